// The invariants of softmax attention's energy field (arXiv 2605.02907), per head and window,
// computed from the factors of E~ (field_factors.h) without building the n x n matrix, except
// max |E~_ij|, which takes one blocked O(n^2 d_h) pass (the cost of one attention score product).
#pragma once

#include "attnspec/spectra/field_factors.h"

namespace attnspec {

struct FieldInvariants {
  // Row zero-sum: max_i |sum_j E~_ij| / max_ij |E~_ij| with E~ = left diag(sigma) right^T as
  // attnspec holds it (exactly 0 in exact arithmetic; a check of the reduction's numerics).
  double row_sum_residual = 0;
  double max_abs = 0;  // max_ij |E~_ij|
  // rank(E~) <= d_h: numerical rank #{sigma_i > n * eps_f32 * sigma_1}, eps_f32 = 2^-23.
  int rank = 0;
  double rank_tolerance = 0;  // the absolute threshold n * eps_f32 * sigma_1
  // Delocalisation over key positions: column energies c_j = sum_i E~_ij^2 (= s^2 kc_j^T Q^T Q kc_j).
  double col_participation = 0;  // (sum c)^2 / sum c^2, in [1, n]
  double col_top1pct_share = 0;  // share of sum c held by the ceil(n / 100) largest c_j
  int col_top_position = 0;      // argmax_j c_j
  // Key incoherence: max_j leverage_j * n / rank(Kc), in [1, n / rank]; leverage = squared row
  // norms of an orthonormal basis of range(Kc).
  double key_coherence = 0;
  int key_coherence_position = 0;
  int key_rank = 0;
};

FieldInvariants field_invariants(const FieldFactors& f);

}  // namespace attnspec
