// The soft-capped logit field of models with attention-logit soft-capping (Gemma2):
//   C_ij = cap * tanh(s q_i . k_j / cap).
// tanh acts elementwise, so C has no rank-d_h factorisation like E~ = s Q Kc^T: its spectra come from
// a dense SVD of the materialised n x n float64 matrix, O(n^2 d_h + n^3) per head. Two conventions,
// those of the uncapped fields (METRICS.md):
//   unmasked  every row centred over all n keys (as E~; reported as *_field_capped)
//   causal    row i centred over the keys its softmax sees, V_i = {j <= i, i - j < W}, entries
//             outside V_i zero (as E~c; reported as *_causal_capped)
#pragma once

#include <vector>

namespace attnspec {

// All n singular values (descending) of the centred capped field of one head; Q and K row-major
// [n, d_h] with leading dimensions ldq / ldk. `window` (causal only): the layer's sliding window, 0 = none.
template <typename T>
std::vector<double> capped_field_singular_values(const T* q, long ldq, const T* k, long ldk, int n, int dh, double scale,
                                                 double cap, bool causal, int window);

}  // namespace attnspec
