// The energy field E~ = s Q Kc^T with its singular vectors, not only its values: with thin QR
// factorisations Q = U1 R1, Kc = U2 R2 and the SVD R1 R2^T = W Sigma Z^T,
//   E~ = (U1 W) (|s| Sigma) (U2 Z)^T  =  left * diag(sigma) * right^T,
// left and right n x r with orthonormal columns (r = min(n, d_h)). Cost O(n d_h^2). The factors
// serve the invariants (invariants.h), the rank-k compression curves (compression.h) and the
// data-side spectra of Q, Qc and Kc.
#pragma once

#include <vector>

namespace attnspec {

struct FieldFactors {
  int n = 0, dh = 0, r = 0;
  double scale = 0;
  std::vector<double> sigma;  // r values of E~, descending, |s| included (same as energy_field_singular_values)
  std::vector<double> left;   // n x r column-major, orthonormal columns (sign of s folded in)
  std::vector<double> right;  // n x r column-major, orthonormal columns
  std::vector<double> q;      // n x d_h column-major float64 copy of Q
  std::vector<double> kc;     // n x d_h column-major keys centred over the n positions
  std::vector<double> q_sigma;   // singular values of Q (uncentred), = those of R1
  std::vector<double> kc_sigma;  // singular values of Kc, = those of R2
  std::vector<double> kc_leverage;  // n leverage scores of range(Kc): squared row norms of its
                                    // orthonormal basis restricted to the numerical rank
  int kc_rank = 0;                  // numerical rank of Kc (n * eps_f32 * sigma_1 tolerance)
};

// Q, K row-major [n, d_h] with leading dimensions ldq / ldk (a head inside an activation), as
// energy_field_singular_values takes them.
template <typename T>
FieldFactors field_factors(const T* q, long ldq, const T* k, long ldk, int n, int dh, double scale);

// Singular values of the n x d matrix X (row-major, leading dimension ld), after subtracting the
// mean row when `centre` (the generated component Xc, centred queries Qc). float64, LAPACK dgesdd.
template <typename T>
std::vector<double> data_singular_values(const T* x, long ld, int n, int d, bool centre);

}  // namespace attnspec
