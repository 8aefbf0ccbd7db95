// Softmax stability under low-rank truncation of the energy field. For a head and window, E~ is
// replaced by its best rank-k approximation E~_k (truncated SVD, from field_factors.h) and both
// are pushed through the model's causal (or sliding-window) softmax. Because every softmax row is
// invariant to adding a constant, softmax over V_i of E~ is exactly the model's attention P, so
//   TV_k = mean_i 1/2 sum_{j in V_i} |P_ij - P^(k)_ij|,   KL_k = mean_i sum_{j in V_i} P_ij log(P_ij / P^(k)_ij)
// (means over all n query rows; V_i the keys row i sees) measure what rank k costs the model.
// k = 0 is the all-equal field: uniform attention over V_i.
//
// Cost: the logits of E~_k are updated incrementally, E~_k = E~_{k'} + left[:, k':k] S right[:, k':k]^T
// (one dgemm per evaluated rank, O(n^2 (k - k')) over the visible band), and each evaluated rank
// costs one exp per visible (i, j): O(n^2 r) flops and O(n^2 |ks|) exps per head in all.
#pragma once

#include <vector>

#include "attnspec/spectra/field_factors.h"

namespace attnspec {

struct CompressionCurve {
  std::vector<int> k;       // ranks evaluated, ascending
  std::vector<double> tv;   // mean over query rows of the total-variation distance
  std::vector<double> kl;   // mean over query rows of KL(P || P^(k)) (nats)
};

// The ranks to evaluate for r = min(n, d_h): every k in 0..r, or (geometric) 0..8 then steps of
// about x1.25, always ending at r.
std::vector<int> compression_ranks(int r, bool geometric);

// `window` is the layer's sliding window (0: plain causal). `ks` ascending, each in [0, f.r].
// `causal` false (an encoder): every row's softmax runs over all n keys and `window` is ignored.
CompressionCurve compression_curve(const FieldFactors& f, int window, const std::vector<int>& ks, bool causal = true);

}  // namespace attnspec
