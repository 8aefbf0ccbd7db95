// The forward pass, top to bottom. The token embeddings start the residual stream h [n, d]; each
// layer then adds what its attention block and its MLP block compute from h, and hands the
// attention's input and its queries and keys to the caller before its attention reads them.
// forward_logits then turns the last h into next-token logits. The math of each step is written
// beside it; how a step is computed (GEMM tiles, online softmax, vector exps) is in kernels.h,
// and where each weight comes from and when it is widened to float32 is in weights.h.
//
// Shapes: n tokens, d = d_model, H query heads and G key/value heads of d_h dims each
// (qd = H d_h, kvd = G d_h), f = d_ff. Everything is float32, rows are tokens.
#include "attnspec/model/forward.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "attnspec/common/error.h"
#include "attnspec/model/kernels.h"
#include "attnspec/model/weights.h"

namespace attnspec {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The product y = x W^T + b that `s` describes, writing y (rows ldy apart), with its weight and
// bias as float32 from `w`.
LinearJob product(const TensorStore& store, LayerWeights& w, const LinearSpec& s, float* y, int64_t ldy) {
  const float* weight = w.get(s.weight);
  const float* bias = w.get(s.bias);
  return {s, weight, s.in_out_layout ? store.at(s.weight).shape[1] : s.in, bias, y, ldy};
}

// h [n, d], the residual stream before layer 0. Row i is token ids[i]'s embedding row times
// embed_scale (Gemma: sqrt(d)), plus BERT's token type 0, plus the learned position i (GPT-2,
// OPT, BERT; rotary models put positions into Q and K instead). OPT's narrower embeddings of
// width de go through project_in, h = e W_in^T, before the positions are added.
std::vector<float> embed(const Model& model, std::span<const int32_t> ids, LayerWeights& w) {
  const ModelConfig& c = model.config;
  const TensorStore& store = *model.store;
  const int n = static_cast<int>(ids.size()), d = c.d_model;
  std::vector<float> h(size_t(n) * d), row(d);
  const TensorView& embed = store.at(model.embed);
  const TensorView* pos = c.learned_positions ? &store.at(model.pos_embed) : nullptr;
  std::vector<float> type_row;
  if (!model.type_embed.empty()) {
    type_row.resize(d);
    store.at(model.type_embed).to_float32(type_row.data(), 0, d);
  }
  const bool projected = !model.embed_proj.weight.empty();
  const int64_t de = projected ? model.embed_proj.in : d;  // width of an embedding row
  std::vector<float> e(projected ? size_t(n) * de : 0);
  float* rows = projected ? e.data() : h.data();
  for (int i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= c.vocab_size)
      throw InputError("token id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                       " is outside the model's vocabulary of " + std::to_string(c.vocab_size));
    embed.to_float32(rows + int64_t(i) * de, size_t(ids[i]) * de, de);
    if (c.embed_scale != 1.0f)
      for (int64_t j = 0; j < de; ++j) rows[int64_t(i) * de + j] *= c.embed_scale;
    if (!type_row.empty())  // BERT: + token_type_embeddings[0] (one segment), before positions as transformers sums
      for (int j = 0; j < d; ++j) h[int64_t(i) * d + j] += type_row[j];
  }
  if (projected) {
    linear(product(store, w, model.embed_proj, h.data(), d), e.data(), n, de);
    w.release();
  }
  if (pos)
    for (int i = 0; i < n; ++i) {
      pos->to_float32(row.data(), size_t(i + c.position_offset) * d, d);
      for (int j = 0; j < d; ++j) h[int64_t(i) * d + j] += row[j];
    }
  return h;
}

// Books the time from start() to stop() to a stage, less what LayerWeights spent widening weights
// meanwhile, which goes to t.widen: a product's first use of a stored F16 or quantized weight
// dequantizes it, and a profile shows that apart from the product's arithmetic.
struct StageClock {
  ForwardTimes& t;
  const LayerWeights& w;
  Clock::time_point t0{};
  double widened0 = 0, bytes0 = 0;
  void start() {
    t0 = Clock::now();
    widened0 = w.widen_seconds();
    bytes0 = w.widened_bytes();
  }
  void stop(double& stage) {
    const double widened = w.widen_seconds() - widened0;
    stage += seconds_since(t0) - widened;
    t.widen += widened;
    t.widened_bytes += w.widened_bytes() - bytes0;
  }
};

void check_finite(const Model& m, const float* p, int64_t count, int layer, const char* what) {
  if (!all_finite(p, count))
    throw input_error(m.path.string(), "non-finite values (NaN or Inf) in layer " + std::to_string(layer) + " " + what +
                                           "; the checkpoint's weights or the input overflow float32");
}

// Layers 0..last_layer on ids, calling on_layer (when set) with each layer's x, q and k before its
// attention. With whole_last false the last layer stops right after its callback (its attention
// and MLP are not needed: forward); with it true the last layer runs to its end too, and the
// residual stream h [n, d] after it is returned (forward_logits).
std::vector<float> run_layers(const Model& model, std::span<const int32_t> ids, int last_layer, bool whole_last,
                              const std::function<void(const LayerActivations&)>& on_layer, ForwardTimes& t) {
  const ModelConfig& c = model.config;
  const TensorStore& store = *model.store;
  thread_count();  // make sure BLAS and OpenMP agree on the count
  const int n = static_cast<int>(ids.size()), d = c.d_model;
  const int qd = c.n_heads * c.head_dim, kvd = c.n_kv_heads * c.head_dim;
  if (n == 0) throw InputError("empty window");
  if (last_layer < 0 || last_layer >= c.n_layers) throw InputError("layer " + std::to_string(last_layer) + " out of range");
  if (c.learned_positions && n > c.max_positions)
    throw InputError("a window of " + std::to_string(n) + " tokens exceeds the model's " +
                     std::to_string(c.max_positions) + " learned positions");

  LayerWeights w(store);  // the current layer's weights as float32 (weights.h)
  // out [n, d] = norm(in [n, d]) with the named weight and bias (LayerNorm or RMSNorm, by family).
  const NormSpec norm_spec{c.norm, c.norm_eps, c.norm_plus_one};
  auto norm = [&](const std::string& weight, const std::string& bias, const float* in, float* out) {
    norm_rows(norm_spec, w.get(weight), w.get(bias), in, out, n, d, d);
  };
  // The product y = x W^T + b of `s`, into y with rows ldy apart.
  auto job = [&](const LinearSpec& s, float* y, int64_t ldy) { return product(store, w, s, y, ldy); };

  // ---- Embeddings: h [n, d] -------------------------------------------------------------------
  StageClock clock{t, w};
  clock.start();
  std::vector<float> h = embed(model, ids, w);
  clock.stop(t.widen);
  if (!model.embed_norm_weight.empty()) {  // BERT: LayerNorm of the summed embeddings
    clock.start();
    norm(model.embed_norm_weight, model.embed_norm_bias, h.data(), h.data());
    w.release();
    clock.stop(t.norm);
  }

  // x [n, d]: a block's input; y [n, d]: a block's output; q [n, qd], k and v [n, kvd]; att [n, qd].
  std::vector<float> x(size_t(n) * d), y(size_t(n) * d), q(size_t(n) * qd), k(size_t(n) * kvd), v(size_t(n) * kvd),
      att(size_t(n) * qd);
  std::vector<float> ff, ff2, z;
  // The MLP, in [n, d] -> out [n, d], through ff [n, f] (each product with its bias, if any):
  //   gated (SwiGLU, GeGLU): out = (act(in W_gate^T) * in W_up^T) W_down^T
  //   plain (GELU, ReLU):    out = act(in W_up^T) W_down^T
  // then, for Gemma2/3, out = norm(out).
  auto mlp = [&](const LayerSpec& L, const float* in, float* out) {
    ff.resize(size_t(n) * c.d_ff);
    if (c.mlp == MlpKind::SwiGLU || c.mlp == MlpKind::GeGLU) {
      ff2.resize(ff.size());
      linears({job(L.up, ff.data(), c.d_ff), job(L.gate, ff2.data(), c.d_ff)}, in, n, d);
      activate(c.mlp, ff2.data(), ff.data(), int64_t(n) * c.d_ff);  // ff2 = act(gate) * up
      linear(job(L.down, out, d), ff2.data(), n, c.d_ff);
    } else {
      linear(job(L.up, ff.data(), c.d_ff), in, n, d);
      activate(c.mlp, ff.data(), nullptr, int64_t(n) * c.d_ff);
      linear(job(L.down, out, d), ff.data(), n, c.d_ff);
    }
    if (!L.mlp_out_norm_weight.empty()) norm(L.mlp_out_norm_weight, "", out, out);
  };

  for (int l = 0; l <= last_layer; ++l) {
    const LayerSpec& L = model.layers[l];
    const bool stop = l == last_layer && !whole_last;  // nothing after this layer's Q and K is needed

    // ---- Attention block ----------------------------------------------------------------------
    // Its input: x = norm1(h) (pre-norm), or h itself (post-norm: BERT, OPT-350m).
    clock.start();
    if (c.post_norm) std::copy(h.begin(), h.end(), x.begin());
    else norm(L.attn_norm_weight, L.attn_norm_bias, h.data(), x.data());
    clock.stop(t.norm);

    // q = x W_q^T + b_q, k = x W_k^T + b_k, v = x W_v^T + b_v; head h of q is columns
    // h d_h .. (h + 1) d_h. The v of a layer that stops after its callback is never read.
    clock.start();
    if (stop) linears({job(L.q, q.data(), qd), job(L.k, k.data(), kvd)}, x.data(), n, d);
    else linears({job(L.q, q.data(), qd), job(L.k, k.data(), kvd), job(L.v, v.data(), kvd)}, x.data(), n, d);
    clock.stop(t.qkv);

    // Qwen3, Gemma3: each head's d_h values RMS-normalised on their own, with a weight [d_h].
    if (c.qk_norm) {
      clock.start();
      norm_rows(norm_spec, w.get(L.q_norm_weight), nullptr, q.data(), q.data(), n * c.n_heads, c.head_dim, c.head_dim);
      norm_rows(norm_spec, w.get(L.k_norm_weight), nullptr, k.data(), k.data(), n * c.n_kv_heads, c.head_dim,
                c.head_dim);
      clock.stop(t.norm);
    }
    // Rotary positions: in each head of q and k, the pair of dims (j, j + r/2) of token i turns
    // by the angle i * inv_freq[j] (Gemma3's local layers have their own frequencies).
    if (c.rotary_dim > 0) {
      clock.start();
      const bool local = !c.inv_freq_sliding.empty() && c.local_rope[l];
      const RopeSpec rs{(local ? c.inv_freq_sliding : c.inv_freq).data(), c.rotary_dim, c.head_dim,
                        c.rope_attention_scaling};
      rope(rs, q.data(), n, c.n_heads);
      rope(rs, k.data(), n, c.n_kv_heads);
      clock.stop(t.rope);
    }

    // x, q and k are what the caller measures: Q and K exactly as the softmax consumes them. The
    // callback comes before the attention below reads q and k in every wiring (pre-norm, parallel
    // residual, post-norm), so values it writes into q and k are the ones attended with.
    check_finite(model, x.data(), int64_t(n) * d, l, "attention input");
    check_finite(model, q.data(), int64_t(n) * qd, l, "queries");
    check_finite(model, k.data(), int64_t(n) * kvd, l, "keys");
    if (on_layer) {
      clock.start();
      on_layer(LayerActivations{l, n, x.data(), q.data(), k.data()});
      clock.stop(t.callback);
    }
    if (stop) break;

    // att_h = softmax(cap(s q_h k_g^T) + mask) v_g for each query head h and its KV head
    // g = h / (H / G); the mask hides keys after the query (causal) and, in a sliding-window
    // layer, keys W or more tokens before it. Encoders see every key.
    clock.start();
    const AttentionSpec as{c.n_heads, c.n_kv_heads, c.head_dim, static_cast<float>(c.softmax_scale[l]),
                           static_cast<float>(c.attn_softcap), c.causal, c.causal ? c.sliding_window[l] : 0};
    attention(as, q.data(), k.data(), v.data(), att.data(), n);
    clock.stop(t.attention);

    // The block's output y = att W_o^T + b_o (Gemma2/3: then normalised).
    clock.start();
    linear(job(L.o, y.data(), d), att.data(), n, qd);
    if (!L.attn_out_norm_weight.empty()) norm(L.attn_out_norm_weight, "", y.data(), y.data());
    clock.stop(t.out_proj);

    // ---- Residual and MLP block, in the family's wiring ---------------------------------------
    clock.start();
    if (c.parallel_residual) {  // GPT-NeoX: h = h + attn(norm1(h)) + mlp(norm2(h)), both from the same h
      norm(L.mlp_norm_weight, L.mlp_norm_bias, h.data(), x.data());
      z.resize(size_t(n) * d);
      mlp(L, x.data(), z.data());
      add_parallel_residual(h.data(), y.data(), z.data(), int64_t(n) * d);
    } else if (c.post_norm) {  // BERT, OPT-350m: h = norm1(h + attn(h)); h = norm2(h + mlp(h))
      add_into(h.data(), y.data(), int64_t(n) * d);
      norm(L.attn_norm_weight, L.attn_norm_bias, h.data(), h.data());
      mlp(L, h.data(), y.data());
      add_into(h.data(), y.data(), int64_t(n) * d);
      norm(L.mlp_norm_weight, L.mlp_norm_bias, h.data(), h.data());
    } else {  // pre-norm: h = h + attn(norm1(h)); h = h + mlp(norm2(h))
      add_into(h.data(), y.data(), int64_t(n) * d);
      norm(L.mlp_norm_weight, L.mlp_norm_bias, h.data(), x.data());
      mlp(L, x.data(), y.data());
      add_into(h.data(), y.data(), int64_t(n) * d);
    }
    clock.stop(t.mlp);
    w.release();  // the layer's float32 copies go (weights.h)
  }
  return h;
}

}  // namespace

ForwardFlops forward_flops(const ModelConfig& c, int n, int last_layer, bool whole_last) {
  const double d = c.d_model, qd = double(c.n_heads) * c.head_dim, kvd = double(c.n_kv_heads) * c.head_dim;
  const int mlp_matrices = c.mlp == MlpKind::SwiGLU || c.mlp == MlpKind::GeGLU ? 3 : 2;
  ForwardFlops f;
  for (int l = 0; l <= last_layer; ++l) {
    const bool stop = l == last_layer && !whole_last;
    f.qkv += 2.0 * n * d * (qd + (stop ? 1 : 2) * kvd);
    if (stop) break;
    // Query i sees keys max(0, i - W + 1)..i under a causal mask with window W, all n without one.
    const int window = c.causal ? c.sliding_window[l] : 0;
    double pairs = 0;
    for (int i = 0; i < n; ++i) pairs += !c.causal ? n : window > 0 ? std::min(i + 1, window) : i + 1;
    f.attention += 2.0 * 2.0 * qd * pairs;
    f.out_proj += 2.0 * n * qd * d;
    f.mlp += 2.0 * n * d * double(c.d_ff) * mlp_matrices;
  }
  if (whole_last) f.head = 2.0 * n * d * double(c.vocab_size);
  return f;
}

void forward(const Model& model, std::span<const int32_t> ids, int last_layer,
             const std::function<void(const LayerActivations&)>& on_layer, ForwardTimes* times) {
  ForwardTimes local;
  run_layers(model, ids, last_layer, /*whole_last=*/false, on_layer, times ? *times : local);
}

std::vector<float> forward_logits(const Model& model, std::span<const int32_t> ids,
                                  const std::function<void(const LayerActivations&)>& on_layer, ForwardTimes* times) {
  const ModelConfig& c = model.config;
  if (model.lm_head.weight.empty()) throw input_error(model.path.string(), "no LM head (" + model.head_missing + ")");
  ForwardTimes local;
  ForwardTimes& t = times ? *times : local;
  std::vector<float> h = run_layers(model, ids, c.n_layers - 1, /*whole_last=*/true, on_layer, t);

  const TensorStore& store = *model.store;
  const int n = static_cast<int>(ids.size()), d = c.d_model;
  const int64_t vocab = model.lm_head.out, de = model.lm_head.in;
  LayerWeights w(store);
  StageClock clock{t, w};
  clock.start();
  // The final norm, in place: h = norm(h), LayerNorm or RMSNorm as the layers' ((1 + w) for
  // Gemma). Post-LN OPT has none: its last layer already ends in a norm.
  if (!c.post_norm)
    norm_rows(NormSpec{c.norm, c.norm_eps, c.norm_plus_one}, w.get(model.final_norm_weight), w.get(model.final_norm_bias),
              h.data(), h.data(), n, d, d);
  // OPT with word_embed_proj_dim != d narrows the output back to the embedding's width de before
  // its tied head: y [n, de] = h W_out^T.
  std::vector<float> narrowed;
  const float* y = h.data();
  if (!model.project_out.weight.empty()) {
    narrowed.resize(size_t(n) * de);
    linear(product(store, w, model.project_out, narrowed.data(), de), h.data(), n, d);
    y = narrowed.data();
  }
  // logits [n, vocab] = y W_head^T, W_head [vocab, de] the stored head or the token embedding (tied),
  // through the same tiled single-threaded-sgemm pool as every other product (kernels.h).
  std::vector<float> logits(size_t(n) * vocab);
  linear(product(store, w, model.lm_head, logits.data(), vocab), y, n, de);
  // Gemma2: logits = cap * tanh(logits / cap) (final_logit_softcapping).
  if (c.final_softcap > 0) soft_cap(static_cast<float>(c.final_softcap), logits.data(), int64_t(n) * vocab);
  clock.stop(t.head);
  if (!all_finite(logits.data(), int64_t(n) * vocab))
    throw input_error(model.path.string(), "non-finite values (NaN or Inf) in the logits; the checkpoint's weights or "
                                           "the input overflow float32");
  return logits;
}

}  // namespace attnspec
