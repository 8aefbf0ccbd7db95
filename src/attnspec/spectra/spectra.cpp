#include "attnspec/spectra/spectra.h"

#include <lapacke.h>

#include <cblas.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "attnspec/common/cpu.h"

namespace attnspec {
namespace {

// The R factor of a thin QR of A (A = U R, U orthonormal) from its c x c Gram matrix G = A^T A
// (upper triangle, column-major, overwritten): A^T A = R^T R, so R is a Cholesky factor of G
// ("Cholesky QR"). When A is not of full numerical rank the pivoted factor (dpstrf) stops at that
// rank, so rank-deficient factors (n < d_h, centred keys) give exact zeros. Singular values of products built from these
// factors agree with a dense float64 SVD to about sqrt(eps) * sigma_1 (~1e-8), far inside the 1e-6
// of METRICS.md, at a fraction of Householder QR's cost (the Gram matrix, streamed_gram below, does most of the work).
RFactor factor_from_gram(std::vector<double>& g, int c) {
  // A NaN or Inf anywhere in column j of A makes G_jj = sum_i a_ij^2 non-finite (float32 inputs
  // cannot overflow it), so the diagonal alone tells whether A was finite.
  for (int j = 0; j < c; ++j)
    if (!std::isfinite(g[size_t(j) * c + j])) {
      RFactor bad;
      bad.cols = c;
      bad.finite = false;
      return bad;
    }
  // Unpivoted Cholesky first (dpotrf, about 2/3 of dpstrf's time): when every pivot stays above
  // dpstrf's rank tolerance (c * eps * max diag), pivoting would have found full rank as well,
  // and R is the same factor up to rounding. Otherwise the pivoted factor decides the rank.
  double max_diag = 0;
  for (int j = 0; j < c; ++j) max_diag = std::max(max_diag, g[size_t(j) * c + j]);
  const double tol = c * LAPACKE_dlamch('E') * max_diag;
  thread_local std::vector<double> trial;
  trial.assign(g.begin(), g.end());
  if (max_diag > 0 && LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'U', c, trial.data(), c) == 0) {
    bool full = true;
    for (int j = 0; j < c && full; ++j) full = trial[size_t(j) * c + j] * trial[size_t(j) * c + j] > tol;
    if (full) {
      RFactor f;
      f.rank = f.cols = c;
      f.R.assign(size_t(c) * c, 0.0);
      for (int j = 0; j < c; ++j)
        for (int i = 0; i <= j; ++i) f.R[size_t(j) * c + i] = trial[size_t(j) * c + i];
      return f;
    }
  }
  std::vector<lapack_int> piv(c);
  lapack_int r = 0;
  // Pivots below c * eps * max diag count as zero (dpstrf's default tolerance when negative).
  const int info = LAPACKE_dpstrf(LAPACK_COL_MAJOR, 'U', c, g.data(), c, piv.data(), &r, -1.0);
  if (info < 0) throw std::runtime_error("dpstrf failed with info " + std::to_string(info));
  // P^T G P = U^T U, U upper triangular with r meaningful rows: A P = Q U, so R = U P^T.
  RFactor f;
  f.rank = static_cast<int>(r);
  f.cols = c;
  f.R.assign(size_t(std::max(f.rank, 1)) * c, 0.0);
  for (int j = 0; j < c; ++j)
    for (int i = 0; i <= std::min<int>(j, f.rank - 1); ++i) f.R[size_t(piv[j] - 1) * f.rank + i] = g[size_t(j) * c + i];
  return f;
}

// Asks for the cache lines of one row (up to 512 bytes) ahead of use. On x86 as volatile asm:
// GCC 12 at -O2 deletes these __builtin_prefetch calls here. A prefetch never faults.
inline void prefetch_line(const char* p) {
#if defined(__x86_64__)
  asm volatile("prefetcht0 %0" : : "m"(*p));
#else
  __builtin_prefetch(p);
#endif
}

inline void prefetch_row(const void* row, long bytes) {
  const char* p = static_cast<const char*>(row);
  for (long b = 0; b < bytes && b < 512; b += 64) prefetch_line(p + b);
}

// --- G = X^T X, streamed -------------------------------------------------------------------------
// The Gram matrices are most of the spectra's arithmetic (two n x d_h per head and window). X
// arrives in float32 (activations, weights), d_h values per row, rows far apart in memory. Rather
// than widen all of X into a float64 copy and hand it to dsyrk (which packs it twice more), rows
// are widened a few at a time into a buffer that stays in L1, and each chunk's outer products are
// added onto G's upper triangle in 8 x 6 register tiles (float64 FMA, the same arithmetic as
// dsyrk's in another order).

#if defined(__x86_64__)
// g[a0:a0+8, b0:b0+NB] += x[:, a0:a0+8]^T x[:, b0:b0+NB] over `rows` rows of c doubles.
template <int NB>
__attribute__((target("avx2,fma"), always_inline)) inline void gram_tile(const double* x, int rows, int c, int a0,
                                                                          int b0, double* g) {
  __m256d lo[NB], hi[NB];
  for (int b = 0; b < NB; ++b) {
    lo[b] = _mm256_loadu_pd(g + size_t(b0 + b) * c + a0);
    hi[b] = _mm256_loadu_pd(g + size_t(b0 + b) * c + a0 + 4);
  }
  for (int i = 0; i < rows; ++i) {
    const double* xi = x + size_t(i) * c;
    const __m256d a_lo = _mm256_loadu_pd(xi + a0), a_hi = _mm256_loadu_pd(xi + a0 + 4);
    for (int b = 0; b < NB; ++b) {
      const __m256d xb = _mm256_broadcast_sd(xi + b0 + b);
      lo[b] = _mm256_fmadd_pd(a_lo, xb, lo[b]);
      hi[b] = _mm256_fmadd_pd(a_hi, xb, hi[b]);
    }
  }
  for (int b = 0; b < NB; ++b) {
    _mm256_storeu_pd(g + size_t(b0 + b) * c + a0, lo[b]);
    _mm256_storeu_pd(g + size_t(b0 + b) * c + a0 + 4, hi[b]);
  }
}

// Upper triangle (and the few entries below it that share its tiles) of g += x^T x; c % 8 == 0.
__attribute__((target("avx2,fma"))) void add_gram_avx2(const double* x, int rows, int c, double* g) {
  for (int b0 = 0; b0 < c; b0 += 6)
    for (int a0 = 0; a0 < std::min(b0 + 6, c); a0 += 8) switch (std::min(6, c - b0)) {
        case 6: gram_tile<6>(x, rows, c, a0, b0, g); break;
        case 5: gram_tile<5>(x, rows, c, a0, b0, g); break;
        case 4: gram_tile<4>(x, rows, c, a0, b0, g); break;
        case 3: gram_tile<3>(x, rows, c, a0, b0, g); break;
        case 2: gram_tile<2>(x, rows, c, a0, b0, g); break;
        default: gram_tile<1>(x, rows, c, a0, b0, g); break;
      }
}
#endif

bool tiled_gram(int c) {
#if defined(__x86_64__)
  return c % 8 == 0 && cpu_has_avx2_fma();
#else
  (void)c;
  return false;
#endif
}

// G (c x c, column-major, upper triangle) = X^T X for an n x c matrix X whose rows
// `widen(i0, rows, buf)` writes as doubles, row-major, c per row.
template <typename Widen>
std::vector<double> streamed_gram(int n, int c, Widen widen) {
  std::vector<double> g(size_t(c) * c, 0.0);
  const bool tiled = tiled_gram(c);
  // Tiled: 16 KB of rows at a time (L1); otherwise dsyrk on blocks of 256 rows.
  const int chunk = tiled ? std::max(8, 2048 / std::max(c, 1)) : 256;
  thread_local std::vector<double> buffer;
  buffer.resize(size_t(chunk) * c);
  for (int i0 = 0; i0 < n; i0 += chunk) {
    const int rows = std::min(chunk, n - i0);
    widen(i0, rows, buffer.data());
#if defined(__x86_64__)
    if (tiled) {
      add_gram_avx2(buffer.data(), rows, c, g.data());
      continue;
    }
#endif
    cblas_dsyrk(CblasColMajor, CblasUpper, CblasNoTrans, c, rows, 1.0, buffer.data(), c, 1.0, g.data(), c);
  }
  return g;
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

RFactor gram_factor(std::vector<double> gram, int m, int c) {
  if (gram.size() != size_t(c) * c) throw std::invalid_argument("gram_factor: the Gram matrix is not c x c");
  RFactor f = factor_from_gram(gram, c);
  f.rows = m;
  return f;
}

template <typename T>
RFactor row_factor(const T* x, long ldx, int n, int c, bool centre) {
  // G = X^T X of the rows (less their column means when centring, taken in a first pass), then
  // its Cholesky factor.
  std::vector<double> mean_buffer(c, 0.0);
  double* __restrict mean = mean_buffer.data();
  // A head's rows are short runs ldx apart (a new page every row or two), which the hardware
  // prefetchers do not follow: the first pass fetches a few rows ahead itself.
  constexpr int kAhead = 8;
  const long row_bytes = long(c) * long(sizeof(T));
  if (centre) {
    for (int i = 0; i < n; ++i) {
      if (i + kAhead < n) prefetch_row(x + (i + kAhead) * ldx, row_bytes);
      for (int j = 0; j < c; ++j) mean[j] += static_cast<double>(x[i * ldx + j]);
    }
    for (int j = 0; j < c; ++j) mean[j] /= n;
  }
  std::vector<double> g = streamed_gram(n, c, [&](int i0, int rows, double* __restrict out) {
    for (int i = i0; i < i0 + rows; ++i) {
      if (!centre && i + kAhead < n) prefetch_row(x + (i + kAhead) * ldx, row_bytes);
      for (int j = 0; j < c; ++j) out[size_t(i - i0) * c + j] = static_cast<double>(x[i * ldx + j]) - mean[j];
    }
  });
  RFactor f = factor_from_gram(g, c);
  f.rows = n;
  return f;
}

template RFactor row_factor<float>(const float*, long, int, int, bool);
template RFactor row_factor<double>(const double*, long, int, int, bool);

std::vector<double> factor_product_singular_values(const RFactor& a, const RFactor& b, double scale) {
  if (a.cols != b.cols) throw std::invalid_argument("factor_product_singular_values: column counts differ");
  // min(m, c) values: exact zeros beyond the ranks.
  const size_t count = size_t(std::min(std::min(a.rows, b.rows), a.cols));
  if (a.rank == 0 || b.rank == 0) return std::vector<double>(count, 0.0);
  // A B^T = U1 (R1 R2^T) U2^T with orthonormal U1, U2: the small core C = R1 R2^T [r1 x r2]
  // carries the spectrum. Its singular values are the square roots of the eigenvalues of the
  // smaller of C C^T and C^T C, a symmetric eigenproblem that costs about 2/3 of an SVD of C at
  // d_h = 64 and 1/2 at d_h = 128 (tridiagonal reduction, then root-free QR). The eigenvalues carry
  // an absolute error ~eps sigma_1^2, so sigma_i one of ~eps sigma_1^2 / sigma_i: 2e-13 sigma_1
  // at sigma_i = 1e-3 sigma_1 and at most sqrt(eps) sigma_1 = 1.5e-8 sigma_1 near zero, the same
  // order as the Cholesky QR's own, inside METRICS.md's 1e-6. Zeros set by the ranks stay exact.
  const int r = std::min(a.rank, b.rank);
  thread_local std::vector<double> core, gram, work;
  core.resize(size_t(a.rank) * b.rank);
  gram.resize(size_t(r) * r);
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, a.rank, b.rank, a.cols, 1.0, a.R.data(), a.rank, b.R.data(),
              b.rank, 0.0, core.data(), a.rank);
  cblas_dsyrk(CblasColMajor, CblasUpper, a.rank <= b.rank ? CblasNoTrans : CblasTrans, r,
              a.rank <= b.rank ? b.rank : a.rank, 1.0, core.data(), a.rank, 0.0, gram.data(), r);
  std::vector<double> lambda(r);
  // dsyevd's minimum workspace (2r + 1) makes its tridiagonal reduction unblocked; room for
  // blocks of 64 makes it 15 % faster at r = 64.
  work.resize(size_t(66 * r + 1));
  lapack_int iwork = 0;
  const int info = LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, 'N', 'U', r, gram.data(), r, lambda.data(), work.data(),
                                       lapack_int(work.size()), &iwork, 1);
  if (info != 0) throw std::runtime_error("dsyevd failed with info " + std::to_string(info));
  std::vector<double> s(count, 0.0);
  for (int i = 0; i < r && size_t(i) < count; ++i) s[i] = std::sqrt(std::max(lambda[r - 1 - i], 0.0)) * std::abs(scale);
  return s;
}

template <typename T>
RFactor column_factor(const T* a, long lda, int m, int c) {
  // G = A^T A, A's columns contiguous: each chunk of rows is gathered column by column.
  std::vector<double> g = streamed_gram(m, c, [&](int i0, int rows, double* __restrict out) {
    for (int j = 0; j < c; ++j)
      for (int i = 0; i < rows; ++i) out[size_t(i) * c + j] = static_cast<double>(a[j * lda + i0 + i]);
  });
  RFactor f = factor_from_gram(g, c);
  f.rows = m;
  return f;
}

template RFactor column_factor<float>(const float*, long, int, int);
template RFactor column_factor<double>(const double*, long, int, int);

std::vector<double> product_singular_values(double* a1, int m, int c1, double* a2, int c2) {
  if (c1 != c2) throw std::invalid_argument("product_singular_values: factors must have equal column counts");
  if (m == 0 || c1 == 0) return {};
  return factor_product_singular_values(column_factor<double>(a1, m, m, c1), column_factor<double>(a2, m, m, c2), 1.0);
}

template <typename T>
std::vector<double> energy_field_singular_values(const T* q, long ldq, const T* k, long ldk, int n, int dh,
                                                 double scale) {
  // E~ = s Q Kc^T: keys centred over the n positions make every row of Q Kc^T sum to zero, the
  // row-centring of E.
  return factor_product_singular_values(row_factor(q, ldq, n, dh, false), row_factor(k, ldk, n, dh, true), scale);
}

template std::vector<double> energy_field_singular_values<float>(const float*, long, const float*, long, int, int, double);
template std::vector<double> energy_field_singular_values<double>(const double*, long, const double*, long, int, int,
                                                                  double);

std::vector<double> interaction_singular_values(const double* wq_t, const double* wk_t, int d, int dh) {
  return product_singular_values(const_cast<double*>(wq_t), d, dh, const_cast<double*>(wk_t), dh);
}

}  // namespace attnspec
