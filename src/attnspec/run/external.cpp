#include "attnspec/run/external.h"

#include <chrono>
#include <cmath>
#include <limits>

#include "attnspec/common/error.h"
#include "attnspec/common/parallel.h"
#include "attnspec/run/outputs.h"
#include "attnspec/spectra/capped.h"
#include "attnspec/spectra/spectra.h"

namespace attnspec {
namespace {

RFactor factor_of(const double* gram, int rows, int dh, const std::string& what, int layer) {
  RFactor f = gram_factor(std::vector<double>(gram, gram + size_t(dh) * dh), rows, dh);
  if (!f.finite)
    throw InputError("non-finite values (NaN or Inf) in the " + what + " of layer " + std::to_string(layer));
  return f;
}

}  // namespace

std::vector<HeadResult> external_layer_heads(const ExternalLayer& a, const AnalysisOptions& options) {
  const int H = a.n_heads, G = a.n_kv_heads, dh = a.head_dim, n = a.n;
  if (H <= 0 || G <= 0 || H % G != 0)
    throw InputError("layer " + std::to_string(a.layer) + ": " + std::to_string(H) + " query heads cannot share " +
                     std::to_string(G) + " key heads");
  if ((options.causal_field() || a.softcap > 0) && (!a.q || !a.k))
    throw std::invalid_argument("external_layer_heads: the causal and capped fields need the layer's Q and K");
  thread_count();  // BLAS single-threaded inside the parallel loops
  const size_t block = size_t(dh) * dh;
  std::vector<RFactor> keys(G);
  FirstException error;
#pragma omp parallel for schedule(dynamic)
  for (int g = 0; g < G; ++g) error.capture([&] { keys[g] = factor_of(a.k_gram + g * block, n, dh, "keys", a.layer); });
  error.rethrow();
  std::vector<HeadResult> out(H);
#pragma omp parallel for schedule(dynamic)
  for (int h = 0; h < H; ++h) error.capture([&] {
    const int g = h / (H / G);
    HeadResult& r = out[h];
    r.layer = a.layer;
    r.head = h;
    r.kv_head = g;
    // E~ = s Q_h Kc_g^T (METRICS.md), reduced exactly to d_h x d_h, as analyze_window does.
    r.field.sigma = factor_product_singular_values(factor_of(a.q_gram + h * block, n, dh, "queries", a.layer), keys[g],
                                                   a.scale);
    r.field.summary = summarize(r.field.sigma);
    const float* qh = a.q ? a.q + size_t(h) * n * dh : nullptr;
    const float* kg = a.k ? a.k + size_t(g) * n * dh : nullptr;
    if (options.causal_field()) {
      const CausalFieldOperator op(qh, dh, kg, dh, n, dh, a.scale, a.window);
      r.extras.causal = causal_field_spectrum(op, options.causal);
    }
    if (a.softcap > 0) {
      r.field_capped.sigma = capped_field_singular_values(qh, dh, kg, dh, n, dh, a.scale, a.softcap, false, 0);
      r.field_capped.summary = summarize(r.field_capped.sigma);
      if (options.causal_field()) {
        r.causal_capped.sigma = capped_field_singular_values(qh, dh, kg, dh, n, dh, a.scale, a.softcap, true, a.window);
        r.causal_capped.summary = summarize(r.causal_capped.sigma);
      }
    }
  });
  error.rethrow();
  return out;
}

std::vector<double> external_weight_spectrum(const double* q_gram, const double* k_gram, int d, int dh) {
  const RFactor q = gram_factor(std::vector<double>(q_gram, q_gram + size_t(dh) * dh), d, dh);
  const RFactor k = gram_factor(std::vector<double>(k_gram, k_gram + size_t(dh) * dh), d, dh);
  if (!q.finite || !k.finite) throw InputError("non-finite values (NaN or Inf) in the query or key projection weights");
  return factor_product_singular_values(q, k, 1.0);
}

HeadSpectrum undefined_spectrum() {
  HeadSpectrum s;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  s.summary.k_tau.fill(-1);
  s.summary.effective_rank = s.summary.participation_ratio = s.summary.stable_rank = s.summary.variance = nan;
  return s;
}

nlohmann::json write_external_run(const std::filesystem::path& dir, const AnalysisOptions& options, bool save_spectra,
                                  const std::string& heads_rows, const std::string& spectra_rows,
                                  nlohmann::json summary) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir)) throw input_error(dir.string(), "cannot create output folder");
  nlohmann::json conventions = conventions_json();
  conventions.update(extras_conventions_json(options));
  if (summary.contains("conventions")) conventions.update(summary["conventions"]);  // the engine's own
  summary["options"] = options_json(options);
  summary["conventions"] = conventions;
  RunRows rows;
  rows.heads = heads_rows;
  rows.spectra = spectra_rows;
  write_run_files(dir, options, save_spectra, rows, [&](const std::string& heads_csv) {
    summary["aggregates"] = aggregates_from_csv(heads_csv);
    return summary;
  });
  return summary;
}

}  // namespace attnspec
