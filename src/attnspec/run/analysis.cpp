#include "attnspec/run/analysis.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "attnspec/common/error.h"
#include "attnspec/common/parallel.h"

#include "attnspec/spectra/capped.h"
#include "attnspec/spectra/spectra.h"

namespace attnspec {

WeightSpectra compute_weight_spectra(const Model& model, int last_layer) {
  const ModelConfig& c = model.config;
  WeightSpectra out;
  out.n_heads = c.n_heads;
  out.heads.resize(size_t(last_layer + 1) * c.n_heads);
  const int d = c.d_model, dh = c.head_dim;
  thread_count();  // makes sure BLAS runs single-threaded inside the parallel loops
  // R factor of W^(h)T [d x d_h], read in the checkpoint's orientation: a [out, in] weight holds
  // its columns as rows, a [in, out] one (GPT-2's Conv1D) its rows.
  auto factor = [&](const ProjectionHeads& w, int head, int l, const std::string& tensor) {
    RFactor f = w.col_step == 1 ? column_factor(w.head[head], long(w.row_step), d, dh)
                                : row_factor(w.head[head], long(w.col_step), d, dh, /*centre=*/false);
    if (!f.finite)
      throw input_error(model.path.string(),
                        "non-finite values (NaN or Inf) in layer " + std::to_string(l) + " tensor '" + tensor + "'");
    return f;
  };
  FirstException error;
  // Layers in chunks, each one pool of tasks (no wait for the slowest head at every layer): all
  // layers at once when the heads are read in place, else as many as 256 MB of float32 copies
  // (other dtypes) hold.
  constexpr size_t kCopyBudget = size_t(256) << 20;
  const int G = c.n_kv_heads, H = c.n_heads;
  for (int l0 = 0; l0 <= last_layer;) {
    std::vector<ProjectionHeads> wq, wk;
    size_t copied = 0;
    do {
      wq.push_back(query_heads(model, l0 + int(wq.size())));
      wk.push_back(key_heads(model, l0 + int(wk.size())));
      copied += (wq.back().widened.size() + wk.back().widened.size()) * sizeof(float);
    } while (l0 + int(wq.size()) <= last_layer && copied < kCopyBudget);
    const int layers = int(wq.size());
    // W_K^(g)T factors first: each serves the H / G query heads of its group.
    std::vector<RFactor> keys(size_t(layers) * G);
#pragma omp parallel for schedule(dynamic)
    for (int task = 0; task < layers * G; ++task)
      error.capture([&] {
        const int l = task / G;
        keys[task] = factor(wk[l], task % G, l0 + l, model.layers[l0 + l].k.weight);
      });
    error.rethrow();
#pragma omp parallel for schedule(dynamic)
    for (int task = 0; task < layers * H; ++task)
      error.capture([&] {
        const int l = task / H, h = task % H;
        // M = W_Q^(h)T W_K^(g): singular values of R_q R_k^T.
        HeadSpectrum& hs = out.heads[size_t(l0 + l) * H + h];
        hs.sigma = factor_product_singular_values(factor(wq[l], h, l0 + l, model.layers[l0 + l].q.weight),
                                                  keys[size_t(l) * G + c.kv_head_of(h)], 1.0);
        hs.summary = summarize(hs.sigma);
      });
    error.rethrow();
    l0 += layers;
  }
  return out;
}

WindowResult analyze_window(const Model& model, std::span<const int32_t> ids, int window_index, int last_layer,
                            const AnalysisOptions& options,
                            const std::function<void(int layer)>& on_layer_done) {
  const ModelConfig& c = model.config;
  WindowResult result;
  result.window = window_index;
  result.n = static_cast<int>(ids.size());
  result.heads.resize(size_t(last_layer + 1) * c.n_heads);
  result.options = options;
  if (options.data_side) result.layers.resize(last_layer + 1);
  forward(
      model, ids, last_layer,
      [&](const LayerActivations& a) {
        const auto t0 = std::chrono::steady_clock::now();
        const long ldq = long(c.n_heads) * c.head_dim, ldk = long(c.n_kv_heads) * c.head_dim;
        FirstException error;
        // The centred keys' R factor is shared by the H / G query heads of each KV group; it is
        // computed first when shared, inside the head's own task when not (one wait per layer
        // instead of two).
        auto key_factor = [&](int g) { return row_factor(a.k + g * c.head_dim, ldk, a.n, c.head_dim, /*centre=*/true); };
        const bool shared_keys = c.n_kv_heads < c.n_heads;
        std::vector<RFactor> key_factors(c.n_kv_heads);
        if (shared_keys) {
#pragma omp parallel for schedule(dynamic)
          for (int g = 0; g < c.n_kv_heads; ++g) error.capture([&] { key_factors[g] = key_factor(g); });
          error.rethrow();
        }
        // One task per head, plus (--data-side) the layer's Xc spectrum as task -1, started first.
        const int first_task = options.data_side ? -1 : 0;
#pragma omp parallel for schedule(dynamic)
        for (int h = first_task; h < c.n_heads; ++h) error.capture([&] {
          if (h < 0) {
            result.layers[a.layer] = compute_layer_extras(c, a);
            return;
          }
          const int g = c.kv_head_of(h);
          HeadResult& r = result.heads[size_t(a.layer) * c.n_heads + h];
          r.layer = a.layer;
          r.head = h;
          r.kv_head = g;
          if (!shared_keys) key_factors[g] = key_factor(g);
          // E~ = s Q_h Kc_g^T  (METRICS.md, energy field), reduced exactly to d_h x d_h.
          r.field.sigma = factor_product_singular_values(
              row_factor(a.q + h * c.head_dim, ldq, a.n, c.head_dim, /*centre=*/false), key_factors[g],
              c.softmax_scale[a.layer]);
          r.field.summary = summarize(r.field.sigma);
          if (options.any()) compute_head_extras(options, c, a, h, r.extras);
          if (c.attn_softcap > 0) {
            // The logits the softmax sees are the capped ones; tanh(.) has no low-rank shortcut,
            // so these are dense n x n spectra (capped.h).
            const float* qh = a.q + h * c.head_dim;
            const float* kg = a.k + g * c.head_dim;
            const double s = c.softmax_scale[a.layer];
            r.field_capped.sigma =
                capped_field_singular_values(qh, ldq, kg, ldk, a.n, c.head_dim, s, c.attn_softcap, false, 0);
            r.field_capped.summary = summarize(r.field_capped.sigma);
            if (options.causal_field()) {
              r.causal_capped.sigma = capped_field_singular_values(qh, ldq, kg, ldk, a.n, c.head_dim, s, c.attn_softcap,
                                                                   true, c.sliding_window[a.layer]);
              r.causal_capped.summary = summarize(r.causal_capped.sigma);
            }
          }
        });
        error.rethrow();
        result.spectra_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (on_layer_done) on_layer_done(a.layer);
      },
      &result.forward_times);
  return result;
}

}  // namespace attnspec
