// Fixed low-rank query/key maps for one KV head, fitted before the text they are used on (the
// deployable counterpart of `plan`'s per-window oracle). A map replaces the head's logits
//   s q.k   by   s (L^T q).(R^T k)            L, R: d_h x k (column-major)
// so a key cache stores R^T k (k numbers per token instead of d_h) and queries are mapped by L^T.
// Three ways to choose L and R from second moments (d_h x d_h, symmetric, float64):
//   pca      L = R = the top-k eigenvectors of S_K = sum k k^T over calibration keys (post-RoPE,
//            as a cache holds them): the keys' best rank-k subspace (Loki's choice).
//   field    the rank-k M = L R^T minimising  sum_w || Q_w (I - M) Kc_w^T ||_F^2  over calibration
//            windows w, with the window statistics pooled (S_Q = sum Q^T Q over the KV head's query
//            heads, S_Kc = sum Kc^T Kc, Kc the keys centred over the window). This is the error of
//            the row-centred logit field E~ = s Q Kc^T, the paper's object: only E~ reaches the
//            softmax (a row constant does not), so the centred keys define what must be kept.
//            With A = S_Q^(1/2), B = S_Kc^(1/2) the objective is ||A B - A M B||_F^2, minimised by
//            A M B = [A B]_k (Eckart-Young): M = A^+ U_k S_k V_k^T B^+, so L = A^+ U_k S_k^(1/2),
//            R = B^+ V_k S_k^(1/2) (pseudo-inverses: a direction no calibration data moves is
//            dropped). The singular values of A B are the pooled field spectrum: the rank policy's
//            input.
//   weights  the same factorisation with S_Q = sum_h W_Q^(h) W_Q^(h)T and S_K = W_K W_K^T: the best
//            rank-k approximation of W_Q^(h)T W_K^(g) (whose singular values are those of A B), a
//            data-free baseline; it ignores RoPE and biases, which rotate and shift real keys.
#pragma once

#include <vector>

namespace attnspec {

struct QueryKeyMap {
  int dh = 0, k = 0;
  std::vector<double> L, R;  // d_h x k, column-major: query side, key side
};

// The symmetric PSD square root and its pseudo-inverse of a d x d matrix S (column-major);
// eigenvalues below `rel` * the largest count as zero.
void psd_sqrt(const std::vector<double>& S, int d, std::vector<double>& root, std::vector<double>& pinv_root,
              double rel = 1e-12);

// The top-k eigenvectors of the symmetric S (d x d) as L = R (pca).
QueryKeyMap pca_map(const std::vector<double>& S_K, int d, int k);

// The whitened factorisation of (S_Q, S_K) at rank k (field, weights).
QueryKeyMap whitened_map(const std::vector<double>& S_Q, const std::vector<double>& S_K, int d, int k);

// The singular values of S_Q^(1/2) S_K^(1/2), descending: for `field`, the pooled spectrum of E~.
std::vector<double> whitened_spectrum(const std::vector<double>& S_Q, const std::vector<double>& S_K, int d);

// Ranks for a model-wide budget: `total` key dimensions shared among heads with `spectra` (one per
// head, descending singular values, d_h each). Each head gets at least 1; the rest go one at a
// time to the head whose next dimension adds the largest share of its own field energy
// (sigma_{k+1}^2 / sum sigma^2), which equalises the captured fraction across heads (the paper's
// k_tau read the other way round). Ties go to the earlier head.
std::vector<int> field_ranks(const std::vector<std::vector<double>>& spectra, int dh, long total);

}  // namespace attnspec
