// The exact low-rank spectra of METRICS.md. Both objects have the form A1 A2^T with tall, thin
// factors, so with thin QR factorisations A1 = U1 R1 and A2 = U2 R2 their singular values are those
// of the small matrix R1 R2^T (R from the Cholesky factor of the float64 Gram A^T A, pivoted when
// A is rank deficient; the values as square roots of the eigenvalues of R1 R2^T's smaller Gram):
//   energy field       E~ = s Q Kc^T          (A1 = Q [n x d_h],      A2 = Kc = K - 1 kbar^T)
//   learned interaction M = W_Q^(h)T W_K^(g)  (A1 = W_Q^T [d x d_h], A2 = W_K^T [d x d_h])
// Cost O(m d_h^2) instead of O(m^3); computed in float64 whatever the input precision.
#pragma once

#include <span>
#include <vector>

namespace attnspec {

// The R factor of a thin QR (A = U R) of a tall m x c matrix, with its numerical rank.
struct RFactor {
  std::vector<double> R;  // rank x cols, column-major
  int rank = 0, rows = 0, cols = 0;
  // False when A held NaN or Inf (its Gram diagonal is then not finite); R is empty.
  bool finite = true;
};

// R of the row-major n x c matrix X (leading dimension ldx), or of X minus its column means when
// `centre` (the centred keys Kc). Computed in float64 whatever T is.
template <typename T>
RFactor row_factor(const T* x, long ldx, int n, int c, bool centre);

// R of the column-major m x c matrix A (column j starts at a + j * lda), e.g. W_Q^(h)T [d x d_h]
// read from a [out, in] weight, whose rows are A's columns. Computed in float64 whatever T is.
template <typename T>
RFactor column_factor(const T* a, long lda, int m, int c);

// R of an m x c matrix A given its c x c float64 Gram matrix G = A^T A (column-major; only the upper
// triangle is read): the Cholesky factor row_factor and column_factor compute after their Gram, for
// Grams computed elsewhere (on an accelerator, from activations attnspec did not compute itself).
RFactor gram_factor(std::vector<double> gram, int m, int c);

// Singular values (descending, min(m, c) of them) of scale * A B^T from the factors of A and B.
std::vector<double> factor_product_singular_values(const RFactor& a, const RFactor& b, double scale);

// Singular values (descending, min(m, c1, c2) of them) of A1 A2^T, where A1 is m x c1 and A2 is
// m x c2, both column-major float64 (read only; the pointers are non-const for old callers).
std::vector<double> product_singular_values(double* a1, int m, int c1, double* a2, int c2);

// Singular values of E~ = s Q Kc^T for Q [n x d_h] and K [n x d_h] given row-major with leading
// dimensions ldq / ldk (a head's columns inside a [n, heads * d_h] activation). Keys are centred
// over positions in float64 before the reduction.
template <typename T>
std::vector<double> energy_field_singular_values(const T* q, long ldq, const T* k, long ldk, int n, int dh, double scale);

// Singular values of W_Q^T W_K for W_Q^T, W_K^T given as column-major d x d_h float64 (copied).
std::vector<double> interaction_singular_values(const double* wq_t, const double* wk_t, int d, int dh);

// Singular values of a general m x c matrix (column-major float64, copied), by LAPACK dgesdd.
std::vector<double> dense_singular_values(const double* a, int m, int c);

}  // namespace attnspec
