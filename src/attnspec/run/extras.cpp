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
#include "attnspec/common/format.h"
#include "attnspec/run/analysis.h"
#include "attnspec/spectra/field_factors.h"

namespace attnspec {
namespace {

std::string fmt(double v) { return format_number(v); }

// A k_tau that the computed values did not reach (Lanczos capped) is written as nan.
std::string fmt_k(int k) { return k < 0 ? "nan" : std::to_string(k); }

std::string tau_name(double tau) { return "k" + std::to_string(int(std::lround(tau * 100))); }

// The summary block every extra spectrum gets: k90, erank, the other k_tau, participation
// ratio, stable rank, sigma_1 (the order of heads.csv's own columns).
std::string summary_header(const std::string& obj) {
  std::string h = ",k90_" + obj + ",erank_" + obj;
  for (double tau : kTaus)
    if (tau != 0.9) h += "," + tau_name(tau) + "_" + obj;
  return h + ",participation_ratio_" + obj + ",stable_rank_" + obj + ",sigma1_" + obj;
}

std::string summary_columns(const SpectrumSummary& s, const std::vector<double>& sigma) {
  std::string out = "," + fmt_k(s.k90()) + "," + fmt(s.effective_rank);
  for (size_t t = 0; t < kTaus.size(); ++t)
    if (kTaus[t] != 0.9) out += "," + fmt_k(s.k_tau[t]);
  return out + "," + fmt(s.participation_ratio) + "," + fmt(s.stable_rank) + "," + fmt(sigma.empty() ? 0.0 : sigma[0]);
}

Spectrum make_spectrum(std::vector<double> sigma, int n) {
  Spectrum s;
  s.summary = summarize(sigma);
  s.rank = numerical_rank(sigma, n);
  s.sigma = std::move(sigma);
  return s;
}

const char* const kDataObjects[] = {"keys", "queries", "queries_centred"};

double quantile(const std::vector<double>& sorted, double p) {
  const double h = (sorted.size() - 1) * p;
  const size_t lo = static_cast<size_t>(std::floor(h));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
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

std::string extra_heads_header(const AnalysisOptions& o) {
  std::string h;
  if (o.capped) h += summary_header("field_capped") + (o.causal_field() ? summary_header("causal_capped") : "");
  if (o.causal_field())
    h += summary_header("causal") +
         ",variance_causal,rank_causal,causal_method,causal_values,causal_unexplained,causal_residual,causal_k_exact,"
         "k90_causal_lower,k99_causal_lower";
  if (o.data_side)
    for (const char* obj : kDataObjects) h += summary_header(obj) + ",rank_" + obj;
  if (o.invariants)
    h += ",row_sum_residual,max_abs_field,rank_field,col_participation,col_top1pct_share,col_top_position,"
         "key_coherence,key_coherence_position,key_rank";
  return h;
}

std::string extra_heads_columns(const AnalysisOptions& o, const HeadResult& r) {
  std::string out;
  const HeadExtras& e = r.extras;
  if (o.capped) {
    out += summary_columns(r.field_capped.summary, r.field_capped.sigma);
    if (o.causal_field()) out += summary_columns(r.causal_capped.summary, r.causal_capped.sigma);
  }
  if (o.causal_field()) {
    const CausalSpectrum& cs = e.causal;
    const double unexplained_share = cs.variance > 0 ? cs.unexplained / cs.variance : 0.0;
    out += summary_columns(cs.summary, cs.sigma) + "," + fmt(cs.variance) + "," + std::to_string(cs.numerical_rank) +
           "," + cs.method + "," + std::to_string(cs.complete ? int(cs.sigma.size()) : cs.krylov_dim) + "," +
           fmt(unexplained_share) + "," + fmt(cs.residual) + "," + (cs.k_tau_exact ? "1" : "0") + "," +
           std::to_string(cs.k_tau_lower[2]) + "," + std::to_string(cs.k_tau_lower.back());
  }
  if (o.data_side)
    for (const Spectrum* s : {&e.keys, &e.queries, &e.queries_centred})
      out += summary_columns(s->summary, s->sigma) + "," + std::to_string(s->rank);
  if (o.invariants) {
    const FieldInvariants& v = e.invariants;
    out += "," + fmt(v.row_sum_residual) + "," + fmt(v.max_abs) + "," + std::to_string(v.rank) + "," +
           fmt(v.col_participation) + "," + fmt(v.col_top1pct_share) + "," + std::to_string(v.col_top_position) + "," +
           fmt(v.key_coherence) + "," + std::to_string(v.key_coherence_position) + "," + std::to_string(v.key_rank);
  }
  return out;
}

void add_extra_spectra(const AnalysisOptions& o, const HeadResult& r, nlohmann::json& row) {
  if (o.capped) row["field_capped"] = r.field_capped.sigma;
  if (o.capped && o.causal_field()) row["causal_capped"] = r.causal_capped.sigma;
  if (o.causal_field()) row["causal"] = r.extras.causal.sigma;
  if (o.data_side) {
    row["keys"] = r.extras.keys.sigma;
    row["queries"] = r.extras.queries.sigma;
    row["queries_centred"] = r.extras.queries_centred.sigma;
  }
}

std::string layers_csv_header() { return "window,layer,n,d" + summary_header("input") + ",rank_input\n"; }

std::string layers_csv_rows(const WindowResult& w) {
  std::string out;
  for (const LayerExtras& L : w.layers)
    out += std::to_string(w.window) + "," + std::to_string(L.layer) + "," + std::to_string(L.n) + "," +
           std::to_string(L.d) + summary_columns(L.input.summary, L.input.sigma) + "," + std::to_string(L.input.rank) +
           "\n";
  return out;
}

std::string layers_jsonl_rows(const WindowResult& w) {
  std::string out;
  for (const LayerExtras& L : w.layers)
    out += nlohmann::json({{"window", w.window}, {"layer", L.layer}, {"input", L.input.sigma}}).dump() + "\n";
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
  std::vector<std::string> metrics = {"k90_field"};
  if (t.column("k90_causal") >= 0) metrics.push_back("k90_causal");
  std::string out = "layer,head,kv_head,windows,k90_weights";
  for (const auto& m : metrics)
    for (const char* stat : {"median", "q25", "q75", "iqr", "min", "max"}) out += "," + m + "_" + stat;
  out += "\n";
  if (cl < 0 || ch < 0) return out;
  struct Acc {
    std::string kv_head, k90_weights;
    int windows = 0;
    std::vector<std::vector<double>> values;
  };
  std::map<std::pair<int, int>, Acc> heads;
  for (const auto& row : t.rows) {
    if (int(row.size()) != int(t.header.size())) continue;
    Acc& acc = heads[{std::stoi(row[cl]), std::stoi(row[ch])}];
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
    out += std::to_string(key.first) + "," + std::to_string(key.second) + "," + acc.kv_head + "," +
           std::to_string(acc.windows) + "," + acc.k90_weights;
    for (auto& v : acc.values) {
      if (v.empty()) {
        out += ",nan,nan,nan,nan,nan,nan";
        continue;
      }
      std::sort(v.begin(), v.end());
      const double q25 = quantile(v, 0.25), q75 = quantile(v, 0.75);
      out += "," + fmt(quantile(v, 0.5)) + "," + fmt(q25) + "," + fmt(q75) + "," + fmt(q75 - q25) + "," + fmt(v.front()) +
             "," + fmt(v.back());
    }
    out += "\n";
  }
  return out;
}

std::vector<std::string> extra_aggregate_columns() {
  return {"k90_causal", "erank_causal", "k99_causal", "k90_keys", "k90_queries", "k90_queries_centred",
          "col_participation", "key_coherence"};
}

}  // namespace attnspec
