#include "attnspec/run/extras.h"

// GCC 12 reports false -Wrestrict positives on std::string concatenation (GCC bug 105329).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <tuple>

#include "attnspec/common/error.h"
#include "attnspec/run/analysis.h"
#include "attnspec/run/columns.h"
#include "attnspec/spectra/field_factors.h"

namespace attnspec {
namespace {

Spectrum make_spectrum(std::vector<double> sigma, int n) {
  Spectrum s;
  s.summary = summarize(sigma);
  s.rank = numerical_rank(sigma, n);
  s.sigma = std::move(sigma);
  return s;
}

}  // namespace

FieldMode parse_field_mode(const std::string& name) {
  if (name == "unmasked") return FieldMode::Unmasked;
  if (name == "causal") return FieldMode::Causal;
  if (name == "both") return FieldMode::Both;
  throw InputError("--field must be unmasked, causal or both (got '" + name + "')");
}

const char* field_mode_name(FieldMode mode) {
  return mode == FieldMode::Unmasked ? "unmasked" : mode == FieldMode::Causal ? "causal" : "both";
}

nlohmann::json options_json(const AnalysisOptions& o) {
  nlohmann::json j = {{"field", field_mode_name(o.field)}, {"data_side", o.data_side}, {"invariants", o.invariants}};
  if (o.capped) j["capped"] = true;
  if (o.causal_field())
    j["causal"] = {{"method", o.causal.method == CausalMethod::Auto    ? "auto"
                              : o.causal.method == CausalMethod::Dense ? "dense"
                                                                       : "lanczos"},
                   {"dense_max", o.causal.dense_max},
                   {"max_values", o.causal.max_values}};
  return j;
}

nlohmann::json extras_conventions_json(const AnalysisOptions& o) {
  nlohmann::json j;
  if (o.capped) {
    j["field_capped"] =
        "soft-capped models (attn_logit_softcapping = cap): C_ij = cap * tanh(s q_i.k_j / cap), the logits the softmax "
        "sees. *_field_capped: C with every row centred over all n keys (the convention of E~); *_causal_capped (with "
        "--field causal|both): row i centred over V_i, zero outside (the convention of E~c). tanh removes the rank-d_h "
        "structure, so both are dense SVDs of the n x n matrix (all n values). The *_field columns stay the pre-cap E~";
  }
  if (o.causal_field()) {
    j["field_causal"] =
        "E~c: row i keeps only the keys its softmax sees, V_i = {j <= i, i - j < W} (W = the layer's sliding "
        "window, none = all j <= i), centred over V_i; entries outside V_i are 0; singular values include s. "
        "The fixed *_field columns stay the unmasked E~ (INTERFACE.md); --field causal and both add the *_causal columns";
    j["causal_method"] =
        "dense: LAPACK dgesdd on the materialised n x n float64 matrix when n <= dense_max (all n values; error ~ n eps "
        "sigma_1). lanczos: Golub-Kahan-Lanczos bidiagonalisation with full reorthogonalisation and O(n d_h) matrix-free "
        "products, run until every k_tau (0.5..0.99) is certified by the rigorous bracket below, or every Ritz pair up "
        "to k99 has converged (residual <= 1e-10 sigma_1, the standard Lanczos test), or max_values steps; values are "
        "the singular values of U^T E~c (rigorous lower bounds of the true ones)";
    j["causal_variance"] = "variance_causal = ||E~c||_F^2 computed exactly in O(n d_h^2) (windowed Welford scatter), "
                           "so k_tau uses the exact total even when only the leading values are computed";
    j["causal_unexplained"] =
        "rigorous bound on the share of variance the computed values miss: 1 - sum sigma~^2 / ||E~c||_F^2; every "
        "leading-k captured variance lies in [sum_{i<=k} sigma~_i^2, + unexplained]";
    j["causal_residual"] = "lanczos: max over the Ritz pairs up to k99 of ||E~c^T u_i - theta_i v_i|| / sigma_1 (each "
                           "guarantees some true singular value that close: a convergence diagnostic); dense: n * eps";
    j["causal_k_exact"] = "k*_causal are rigorous upper bounds of the true k_tau (exact for dense) and k90/k99_causal_lower "
                          "rigorous lower bounds (Ky Fan with the unexplained variance); causal_k_exact = 1 when the "
                          "brackets of all five taus are single values. k_tau not reached by the computed values: nan";
    j["erank_causal"] = "needs every singular value: nan for lanczos unless the Krylov space reached n";
  }
  if (o.data_side) {
    j["data_side"] = "layers.csv: Xc = the normalised attention input (after ln_1 / input_layernorm) centred over "
                     "positions, n x d. heads.csv *_keys: Kc (keys centred over positions), *_queries: Q as consumed "
                     "(uncentred), *_queries_centred: Qc; all n x d_h, float64 SVD";
  }
  if (o.invariants) {
    j["row_sum_residual"] = "max_i |sum_j E~_ij| / max_ij |E~_ij| for E~ as attnspec factors it (0 in exact arithmetic)";
    j["numerical_rank"] = "rank_* = #{sigma_i > n * eps_f32 * sigma_1}, eps_f32 = 2^-23 (activations are float32); "
                          "rank_field <= d_h is the invariant";
    j["column_energy"] = "c_j = sum_i E~_ij^2 = s^2 kc_j^T Q^T Q kc_j; col_participation = (sum c)^2 / sum c^2 in [1, n]; "
                         "col_top1pct_share = share of sum c in the ceil(n/100) largest c_j; col_top_position = argmax";
    j["key_coherence"] = "max_j l_j * n / rank(Kc), l_j = squared row norms of an orthonormal basis of range(Kc) "
                         "(thin QR, restricted to its numerical rank); in [1, n / rank]";
  }
  j["head_summary"] = "head_summary.csv: per (layer, head) over windows: median, q25, q75, iqr = q75 - q25 (linear "
                      "interpolation between order statistics, numpy's default), min, max of k90_field (and k90_causal)";
  return j;
}

void compute_head_extras(const AnalysisOptions& o, const ModelConfig& c, const LayerActivations& a, int h,
                         HeadExtras& out) {
  const int g = c.kv_head_of(h), dh = c.head_dim, n = a.n;
  const long ldq = long(c.n_heads) * dh, ldk = long(c.n_kv_heads) * dh;
  const float* q = a.q + h * dh;
  const float* k = a.k + g * dh;
  const double s = c.softmax_scale[a.layer];
  if (o.causal_field()) {
    const CausalFieldOperator op(q, ldq, k, ldk, n, dh, s, c.sliding_window[a.layer]);
    out.causal = causal_field_spectrum(op, o.causal);
  }
  if (o.data_side || o.invariants) {
    const FieldFactors f = field_factors(q, ldq, k, ldk, n, dh, s);
    if (o.data_side) {
      out.keys = make_spectrum(f.kc_sigma, n);
      out.queries = make_spectrum(f.q_sigma, n);
      out.queries_centred = make_spectrum(data_singular_values(q, ldq, n, dh, true), n);
    }
    if (o.invariants) out.invariants = field_invariants(f);
  }
}

LayerExtras compute_layer_extras(const ModelConfig& c, const LayerActivations& a) {
  LayerExtras L;
  L.layer = a.layer;
  L.n = a.n;
  L.d = c.d_model;
  L.input = make_spectrum(data_singular_values(a.x, long(c.d_model), a.n, c.d_model, true), a.n);
  return L;
}

size_t extras_bytes(const AnalysisOptions& o, int n) {
  size_t b = 0;
  if (o.causal_field()) {
    const bool dense = o.causal.method == CausalMethod::Dense || (o.causal.method == CausalMethod::Auto && n <= o.causal.dense_max);
    // dense: the matrix, dgesdd's copy and its workspace (~ 4 n^2 doubles); lanczos: two bases.
    b += dense ? size_t(4) * n * n * 8 : size_t(2) * n * (std::min(n, o.causal.max_values) + 1) * 8;
  }
  if (o.capped) b += size_t(4) * n * n * 8;  // the capped field: its matrix, dgesdd's copy and workspace
  return b;
}

std::string layers_csv_header() { return csv_header(layer_columns()); }

std::string layers_csv_rows(const WindowResult& w) {
  std::string out;
  for (const LayerExtras& L : w.layers) append_csv_row(out, layer_columns(), {w.window, L});
  return out;
}

std::string layers_jsonl_rows(const WindowResult& w) {
  std::string out;
  for (const LayerExtras& L : w.layers) out += json_row(layer_spectra_fields(), {w.window, L}).dump() + "\n";
  return out;
}

int CsvTable::column(const std::string& name) const {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return static_cast<int>(i);
  return -1;
}

CsvTable parse_csv(const std::string& text) {
  CsvTable t;
  size_t pos = 0;
  bool first = true;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    if (end > pos) {
      std::vector<std::string> fields;
      size_t a = pos;
      while (true) {
        size_t b = text.find(',', a);
        if (b == std::string::npos || b > end) b = end;
        fields.emplace_back(text.substr(a, b - a));
        if (b == end) break;
        a = b + 1;
      }
      if (first) t.header = std::move(fields);
      else t.rows.push_back(std::move(fields));
      first = false;
    }
    pos = end + 1;
  }
  return t;
}

std::string head_summary_csv(const std::string& heads_csv) {
  const CsvTable t = parse_csv(heads_csv);
  const int cl = t.column("layer"), ch = t.column("head"), cg = t.column("kv_head"), cw = t.column("k90_weights");
  // The heads.csv columns spread per head; those an option adds only when heads.csv holds them.
  std::vector<std::string> metrics;
  for (const auto& c : heads_columns()) {
    if (!c.spread_per_head) continue;
    if (t.column(c.name) >= 0) metrics.push_back(c.name);
    else if (c.added_by == AddedBy::Always && cl >= 0 && ch >= 0)
      throw InputError("heads.csv has no column " + c.name + ", which every run writes");
  }
  const Columns<HeadSummaryRow> columns = head_summary_columns(metrics);
  std::string out = csv_header(columns);
  if (cl < 0 || ch < 0) return out;
  std::map<std::pair<int, int>, HeadSummaryRow> heads;
  for (const auto& row : t.rows) {
    if (int(row.size()) != int(t.header.size())) continue;
    HeadSummaryRow& acc = heads[{std::stoi(row[cl]), std::stoi(row[ch])}];
    acc.values.resize(metrics.size());
    acc.kv_head = cg >= 0 ? row[cg] : "";
    acc.k90_weights = cw >= 0 ? row[cw] : "";
    ++acc.windows;
    for (size_t m = 0; m < metrics.size(); ++m) {
      const std::string& v = row[t.column(metrics[m])];
      if (v != "nan" && !v.empty()) acc.values[m].push_back(std::stod(v));
    }
  }
  for (auto& [key, acc] : heads) {
    acc.layer = key.first;
    acc.head = key.second;
    for (auto& v : acc.values) std::sort(v.begin(), v.end());
    append_csv_row(out, columns, acc);
  }
  return out;
}

}  // namespace attnspec
