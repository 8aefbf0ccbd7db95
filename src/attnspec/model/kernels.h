// The forward pass's arithmetic: matrix products, norms, rotary embedding, attention and the MLP
// activations, in float32. Matrices are row-major; `ld` is the distance between two rows (at least
// the row's width), so a kernel can read or write a column block of a wider matrix. Each kernel
// splits its work over attnspec's OpenMP threads by shape alone, with every BLAS call inside
// single-threaded (set_thread_count in forward.h): results do not depend on the thread count.
// Shapes: n tokens, d = d_model, H query heads and G key/value heads of d_h dims each.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "attnspec/model/model.h"

namespace attnspec {

// ---- Matrix products ---------------------------------------------------------------------------

// One product y [n, out] = x [n, in] W^T + b, with W's stored tensor already float32 in memory and
// `spec` saying which of its rows or columns are W (LinearSpec: [out, in] rows, possibly fused and
// head-interleaved, or Conv1D's [in, out_total] with W^T a column block of it).
struct LinearJob {
  const LinearSpec& spec;
  const float* weight;  // the stored tensor's first element
  int64_t ldw;          // its row length: in for [out, in] storage, out_total for [in, out_total]
  const float* bias;    // the stored bias's first element (indexed like the weight's outputs), or null
  float* y;             // [n, spec.out], rows ldy apart
  int64_t ldy;
};

// Every job's y from the same x [n, in] (rows ldx apart): Q, K and V, or gate and up. Each product
// is cut into tiles that depend only on its shape (up to 512 rows x at least 2048 columns, rows
// halved down to 128 until there are 4 tiles; one tile per block of rows and head for
// head-interleaved weights), and the tiles of all jobs are one pool for the threads. A tile is one
// single-threaded sgemm onto its bias rows (beta = 1), or onto nothing (beta = 0) without a bias.
void linears(std::initializer_list<LinearJob> jobs, const float* x, int n, int64_t ldx);
inline void linear(const LinearJob& job, const float* x, int n, int64_t ldx) { linears({job}, x, n, ldx); }

// ---- Norms -------------------------------------------------------------------------------------

struct NormSpec {
  NormKind kind = NormKind::RMSNorm;
  double eps = 1e-5;
  bool plus_one = false;  // RMSNorm times (1 + w) (Gemma)
};

// x [rows, dim] -> y [rows, dim], both rows ld apart; y may be x. Per row, with mean and variance
// summed in float64 (as ATen's CPU kernels accumulate float32):
//   LayerNorm: (x - mean) / sqrt(var + eps) * w + b
//   RMSNorm:   x / sqrt(mean(x^2) + eps) * w, or * (1 + w) with plus_one
// w [dim] null: no affine weight (OPT's elementwise_affine = false); b [dim] null: no bias.
void norm_rows(const NormSpec& s, const float* w, const float* b, const float* x, float* y, int rows, int dim,
               int64_t ld);

// ---- Rotary embedding --------------------------------------------------------------------------

struct RopeSpec {
  const float* inv_freq = nullptr;  // [rotary_dim / 2]
  int rotary_dim = 0;               // r <= d_h: the first r dims of each head rotate, the rest stay
  int head_dim = 0;
  float attention_scaling = 1.0f;   // cos and sin times this (transformers' attention_scaling)
};

// t [n, heads * d_h] in place, row i at position i. Hugging Face's rotate-half convention: dims
// j and j + r/2 of each head are a pair rotated by the angle i * inv_freq[j] (angle, cos and sin
// in float32, as transformers builds them):
//   t_j <- t_j cos - t_(j + r/2) sin;   t_(j + r/2) <- t_(j + r/2) cos + t_j sin
void rope(const RopeSpec& s, float* t, int n, int heads);

// ---- Attention ---------------------------------------------------------------------------------

struct AttentionSpec {
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;  // H, G (dividing H), d_h
  float scale = 1.0f;   // s
  float softcap = 0;    // > 0: logits become cap * tanh(logits / cap) (Gemma2)
  bool causal = true;   // key j visible to query i iff j <= i; false (encoders): every key visible
  int window = 0;       // causal only, > 0: also i - j < window (sliding-window attention)
};

// q [n, H d_h], k and v [n, G d_h] -> out [n, H d_h]. For query head h and its KV head
// g = h / (H / G) (grouped-query attention):
//   out_h = softmax_rows(cap(s q_h k_g^T) + mask) v_g,   mask = 0 where visible, -inf elsewhere
// without an n x n buffer: blocks of 64 query rows (of all the heads sharing g, stacked into one
// product) meet blocks of 256 keys, and each row's softmax accumulates over the key blocks
// (online softmax).
void attention(const AttentionSpec& s, const float* q, const float* k, const float* v, float* out, int n);

// ---- Elementwise -------------------------------------------------------------------------------

// a [count] (and b [count] for the gated kinds) -> a [count]:
//   GeluTanh:  gelu_new(a) = 0.5 a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3)))
//   GeluExact: 0.5 a (1 + erf(a / sqrt(2)))
//   Relu:      max(a, 0)
//   SwiGLU:    silu(a) * b = a sigmoid(a) * b           (a the gate, b the up projection)
//   GeGLU:     gelu_new(a) * b
void activate(MlpKind kind, float* a, const float* b, int64_t count);

// a [count] -> cap * tanh(a / cap) (Gemma2's final_logit_softcapping; cap > 0), in the order
// transformers computes it: divide, tanh, multiply.
void soft_cap(float cap, float* a, int64_t count);

// h [count] += x [count].
void add_into(float* h, const float* x, int64_t count);

// h [count] = (z + y) + h in that order (transformers' parallel residual: mlp + attn + h).
void add_parallel_residual(float* h, const float* y, const float* z, int64_t count);

// False when p [count] holds a NaN or an Inf.
bool all_finite(const float* p, int64_t count);

}  // namespace attnspec
