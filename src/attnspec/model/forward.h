// The one forward pass that serves every family: embeddings, then per layer
//   X = norm1(h);  Q, K, V = X W^T + b;  RoPE(Q, K);  [hand X, Q, K to the caller]
//   h += softmax(s Q K^T + causal/sliding mask) V W_o^T;  h += MLP(norm2(h))
// or, for a post-LN encoder (BERT: embeddings LayerNorm'd, no mask),
//   X = h;  Q, K, V = X W^T + b;  [hand X, Q, K to the caller]
//   h = norm1(h + softmax(s Q K^T) V W_o^T);  h = norm2(h + MLP(h))
// in float32 on BLAS, up to the last layer the caller asks for. forward_logits runs every layer
// to its end and then the output side (final norm, OPT's project_out, LM head, Gemma2's soft-cap).
// forward.cpp holds the layer loop, kernels.cpp its arithmetic and the thread count, weights.cpp
// the widening of weights to float32, their residency and the projection heads below.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "attnspec/model/model.h"

namespace attnspec {

// A layer's attention input and its queries and keys, handed to the caller before the attention
// reads them. The caller may overwrite q and k (after RoPE, as a key cache would hold them) before
// attention uses them: the layer's softmax, and so every later layer, then sees the new values.
struct LayerActivations {
  int layer = 0;
  int n = 0;               // tokens in the window
  const float* x = nullptr;  // [n, d_model]            normalised input of the attention block (post-LN: h)
  float* q = nullptr;        // [n, n_heads * head_dim]  after bias and RoPE; head h = columns h*d_h..
  float* k = nullptr;        // [n, n_kv_heads * head_dim]
};

// Per-layer time spent, for profiles (seconds).
struct ForwardTimes {
  double widen = 0, norm = 0, qkv = 0, rope = 0, attention = 0, out_proj = 0, mlp = 0, callback = 0;
  double head = 0;  // forward_logits' output side (final norm, project_out, LM head, soft-cap)
  double widened_bytes = 0;  // float32 bytes widened from F16/BF16/quantized weights (0 when kept from before)
};

// The arithmetic of a forward pass over n tokens per stage, in FLOPs (a multiply-add is 2): what a
// profile divides each stage's time by. The products count their weights once per token; the
// attention counts only the query-key pairs its mask lets through (causal, sliding window), for
// the scores and for P V. With whole_last false the last layer stops after its Q and K (forward),
// with it true it runs to its end and the LM head follows (forward_logits).
struct ForwardFlops {
  double qkv = 0, attention = 0, out_proj = 0, mlp = 0, head = 0;
  double total() const { return qkv + attention + out_proj + mlp + head; }
};
ForwardFlops forward_flops(const ModelConfig& c, int n, int last_layer, bool whole_last);

// Runs `ids` through layers 0..last_layer and calls `on_layer` once per layer with its
// activations (valid only during the call). Throws InputError on ids outside the vocabulary or a
// window longer than learned positions allow, and on NaN/Inf in a layer's activations.
void forward(const Model& model, std::span<const int32_t> ids, int last_layer,
             const std::function<void(const LayerActivations&)>& on_layer, ForwardTimes* times = nullptr);

// The whole model on `ids`: every layer (calling `on_layer`, when given, as forward does, before
// each layer's attention), then the output side, as transformers' *ForCausalLM computes it:
//   logits = softcap(project_out(final_norm(h)) W_head^T)
// (final norm absent for post-LN OPT, project_out only for OPT with word_embed_proj_dim != d,
// softcap only for Gemma2's final_logit_softcapping). Returns row-major [n, vocab] float32 logits:
// row i scores the token after ids[i]. Throws InputError "<path>: no LM head (...)" for a model
// without one (an encoder, a base model saved without its head), besides forward's errors and
// NaN/Inf in the logits. Computes every layer exactly as forward does.
std::vector<float> forward_logits(const Model& model, std::span<const int32_t> ids,
                                  const std::function<void(const LayerActivations&)>& on_layer = {},
                                  ForwardTimes* times = nullptr);

// A layer's W_Q (all H heads) or W_K (all G KV heads) as float32, straight from the checkpoint (no
// bias, norm, RoPE or scale): element (j, c) of head h's W^(h) [d_h x d_model] (output j, input c;
// METRICS.md's convention y = W x) is head[h][j * row_step + c * col_step]. Either row_step or
// col_step is 1: the heads are read in the stored orientation, in place when the checkpoint holds
// aligned float32 in order, otherwise from a float32 copy of the layer's rows (`widened`).
struct ProjectionHeads {
  std::vector<const float*> head;
  int64_t row_step = 0, col_step = 0;
  std::vector<float> widened;
};
ProjectionHeads query_heads(const Model& model, int layer);
ProjectionHeads key_heads(const Model& model, int layer);

// Maps the pages of layers 0..last_layer's weights up front when the checkpoint is small next to
// the machine's memory (no-op otherwise), so that reading them later takes no page faults.
void map_layer_weights(const Model& model, int last_layer);

// Sets the thread count of every heavy step (BLAS and the attention/elementwise loops).
void set_thread_count(int threads);
int thread_count();

}  // namespace attnspec

namespace attnspec {
// The float32 GEMM rate of the linked BLAS (GFLOP/s, best of `repeats`), with BLAS's own threading
// at `threads`: the ceiling a benchmark compares the forward pass with.
double sgemm_gflops(int size, int threads, int repeats);
// Seconds of one single-threaded y [m, n] = x [m, k] W^T product with W stored [n, k] as the
// forward's tiles call it (best of `repeats`): a benchmark fits it against m to find the per-call
// cost that does not shrink with m (packing W's panels, which a pre-packed weight would save).
double sgemm_tile_seconds(int m, int n, int k, int repeats);
}  // namespace attnspec
