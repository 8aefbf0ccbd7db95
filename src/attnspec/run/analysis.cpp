#include "attnspec/run/analysis.h"

#include <chrono>
#include <cmath>

#include "attnspec/common/error.h"
#include "attnspec/common/parallel.h"

#include "attnspec/spectra/spectra.h"

namespace attnspec {

WeightSpectra compute_weight_spectra(const Model& model, int last_layer) {
  const ModelConfig& c = model.config;
  WeightSpectra out;
  out.n_heads = c.n_heads;
  out.heads.resize(size_t(last_layer + 1) * c.n_heads);
  const int d = c.d_model, dh = c.head_dim;
  thread_count();  // makes sure BLAS runs single-threaded inside the parallel loop
  FirstException error;
#pragma omp parallel
  {
    std::vector<double> wq(size_t(d) * dh), wk(size_t(d) * dh);
#pragma omp for schedule(dynamic)
    for (int task = 0; task < (last_layer + 1) * c.n_heads; ++task) {
      error.capture([&] {
        const int l = task / c.n_heads, h = task % c.n_heads;
        query_weights_transposed(model, l, h, wq.data());              // W_Q^(h)T  [d x d_h]
        key_weights_transposed(model, l, c.kv_head_of(h), wk.data());  // W_K^(g)T  [d x d_h]
        for (const auto* w : {&wq, &wk})
          for (double x : *w)
            if (!std::isfinite(x))
              throw input_error(model.path.string(), "non-finite values (NaN or Inf) in layer " + std::to_string(l) + " tensor '" +
                                                         (w == &wq ? model.layers[l].q.weight : model.layers[l].k.weight) + "'");
        HeadSpectrum& hs = out.heads[task];
        hs.sigma = interaction_singular_values(wq.data(), wk.data(), d, dh);
        hs.summary = summarize(hs.sigma);
      });
    }
  }
  error.rethrow();
  return out;
}

WindowResult analyze_window(const Model& model, std::span<const int32_t> ids, int window_index, int last_layer,
                            const AnalysisOptions& options) {
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
          // E~ = s Q_h Kc_g^T  (METRICS.md, energy field), reduced exactly to d_h x d_h.
          r.field.sigma = energy_field_singular_values(a.q + h * c.head_dim, ldq, a.k + g * c.head_dim, ldk, a.n,
                                                       c.head_dim, c.softmax_scale[a.layer]);
          r.field.summary = summarize(r.field.sigma);
          if (options.any()) compute_head_extras(options, c, a, h, r.extras);
        });
        error.rethrow();
        result.spectra_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      },
      &result.forward_times);
  return result;
}

}  // namespace attnspec
