#include "attnspec/run/columns.h"

// GCC 12 reports false -Wrestrict positives on std::string concatenation (GCC bug 105329).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include <algorithm>
#include <cmath>
#include <tuple>
#include <type_traits>
#include <utility>

#include "attnspec/common/format.h"

namespace attnspec {

bool is_added(AddedBy by, const AnalysisOptions& o) {
  switch (by) {
    case AddedBy::Always: return true;
    case AddedBy::SoftCap: return o.capped;
    case AddedBy::SoftCapCausal: return o.capped && o.causal_field();
    case AddedBy::Causal: return o.causal_field();
    case AddedBy::DataSide: return o.data_side;
    case AddedBy::Invariants: return o.invariants;
  }
  return false;
}

namespace {

std::string fmt(double v) { return format_number(v); }
std::string integer(long long v) { return std::to_string(v); }
// A k_tau that the computed values did not reach (Lanczos capped) is written as nan.
std::string fmt_k(int k) { return k < 0 ? "nan" : std::to_string(k); }

int percent(double tau) { return int(std::lround(tau * 100)); }
constexpr size_t kK90 = 2;
static_assert(kTaus[kK90] == 0.9);

// Which of a spectrum's columns are summarised (Column::aggregated, Column::spread_per_head).
struct Summaries {
  std::vector<double> aggregated_taus;
  bool aggregated_erank = false;
  bool k90_per_head = false;
};

// The summary columns of one spectrum: k_tau, erank, participation ratio, stable rank, sigma_1,
// named <summary>_<obj>; `what` says in the meanings what the spectrum is of, `convention` is the
// key defining that object (its sigma_1 column's). `get` gives, from a row, what holds the
// spectrum's `summary` and `sigma`.
template <typename Row, typename Get>
struct SpectrumColumns {
  std::string obj, what, convention;
  AddedBy by;
  Get get;

  Column<Row> k(size_t t, const Summaries& s = {}) const {
    const double tau = kTaus[t];
    return {.name = "k" + std::to_string(percent(tau)) + "_" + obj,
            .meaning = "smallest k whose k largest singular values hold " + std::to_string(percent(tau)) +
                       "% of the variance of " + what,
            .convention = "k_tau",
            .added_by = by,
            .value = [get = get, t](const Row& r) { return fmt_k(get(r).summary.k_tau[t]); },
            .aggregated = std::count(s.aggregated_taus.begin(), s.aggregated_taus.end(), tau) > 0,
            .spread_per_head = t == kK90 && s.k90_per_head};
  }
  Column<Row> erank(const Summaries& s = {}) const {
    return {.name = "erank_" + obj,
            .meaning = "effective rank of " + what,
            .convention = "erank",
            .added_by = by,
            .value = [get = get](const Row& r) { return fmt(get(r).summary.effective_rank); },
            .aggregated = s.aggregated_erank};
  }
  // k_tau but k90, participation ratio, stable rank, sigma_1.
  void add_rest(Columns<Row>& out, const Summaries& s = {}) const {
    for (size_t t = 0; t < kTaus.size(); ++t)
      if (t != kK90) out.push_back(k(t, s));
    out.push_back({.name = "participation_ratio_" + obj,
                   .meaning = "participation ratio of " + what,
                   .convention = "participation_ratio",
                   .added_by = by,
                   .value = [get = get](const Row& r) { return fmt(get(r).summary.participation_ratio); }});
    out.push_back({.name = "stable_rank_" + obj,
                   .meaning = "stable rank of " + what,
                   .convention = "stable_rank",
                   .added_by = by,
                   .value = [get = get](const Row& r) { return fmt(get(r).summary.stable_rank); }});
    out.push_back({.name = "sigma1_" + obj,
                   .meaning = "largest singular value of " + what,
                   .convention = convention,
                   .added_by = by,
                   .value = [get = get](const Row& r) {
                     const auto& sigma = get(r).sigma;
                     // An undefined spectrum (NaN summaries, e.g. W_Q^T W_K of a low-rank latent attention) has no sigma_1.
                     return fmt(sigma.empty() ? (std::isnan(get(r).summary.variance) ? std::nan("") : 0.0) : sigma[0]);
                   }});
  }
  // k90, erank, then the rest: the order of every spectrum's block after heads.csv's first two.
  void add_all(Columns<Row>& out, const Summaries& s = {}) const {
    out.push_back(k(kK90, s));
    out.push_back(erank(s));
    add_rest(out, s);
  }
};

template <typename Row, typename Get>
SpectrumColumns<Row, Get> spectrum(std::string obj, std::string what, std::string convention, AddedBy by, Get get) {
  return {std::move(obj), std::move(what), std::move(convention), by, std::move(get)};
}

// A numeric column: an integer as it is, any other number formatted (format.h).
template <typename Row, typename Get>
Column<Row> number_column(std::string name, std::string meaning, std::string convention, AddedBy by, Get get) {
  return {.name = std::move(name), .meaning = std::move(meaning), .convention = std::move(convention), .added_by = by,
          .value = [get](const Row& r) {
            const auto v = get(r);
            if constexpr (std::is_integral_v<decltype(v)>) return integer(v);
            else return fmt(v);
          }};
}

// The same for a column every row has.
template <typename Row, typename Get>
Column<Row> always_column(std::string name, std::string meaning, std::string convention, Get get) {
  return number_column<Row>(std::move(name), std::move(meaning), std::move(convention), AddedBy::Always,
                            std::move(get));
}

// `column`, with its min / median / max in summary.json's aggregates.
template <typename Row>
Column<Row> aggregated(Column<Row> column) {
  column.aggregated = true;
  return column;
}

// The gaps k90(M) / k90(E~) and erank(M) / erank(E~): NaN when the field is zero.
// A numerator that is not defined (a k_tau written nan: negative) gives NaN too.
double ratio(double num, double den) { return den > 0 && num >= 0 ? num / den : std::nan(""); }

Columns<HeadRow> make_heads_columns() {
  using R = const HeadRow&;
  Columns<HeadRow> c;
  c.push_back(always_column<HeadRow>("window", "window index", "indexing", [](R r) { return r.window.window; }));
  c.push_back(always_column<HeadRow>("layer", "layer index", "indexing", [](R r) { return r.head.layer; }));
  c.push_back(always_column<HeadRow>("head", "query head index", "indexing", [](R r) { return r.head.head; }));
  c.push_back(always_column<HeadRow>("kv_head", "the KV head g the query head reads", "kv_head",
                                     [](R r) { return r.head.kv_head; }));
  c.push_back(always_column<HeadRow>("n", "tokens in the window", "windows", [](R r) { return r.window.n; }));

  const auto field = spectrum<HeadRow>("field", "the energy field E~", "field", AddedBy::Always,
                                       [](R r) -> const HeadSpectrum& { return r.head.field; });
  const auto weights = spectrum<HeadRow>("weights", "the learned interaction M = W_Q^T W_K", "weights",
                                         AddedBy::Always, [](R r) -> const HeadSpectrum& { return r.weights; });
  const Summaries headline{.aggregated_taus = {0.9}, .aggregated_erank = true};
  c.push_back(field.k(kK90, {.aggregated_taus = {0.9}, .k90_per_head = true}));
  c.push_back(weights.k(kK90, headline));
  c.push_back(field.erank(headline));
  c.push_back(weights.erank(headline));
  field.add_rest(c);
  weights.add_rest(c);
  c.push_back({.name = "gap_k90",
               .meaning = "k90_weights / k90_field (nan when the field is zero)",
               .convention = "gap_k90",
               .value = [](R r) { return fmt(ratio(r.weights.summary.k90(), r.head.field.summary.k90())); },
               .aggregated = true});
  c.push_back({.name = "gap_erank",
               .meaning = "erank_weights / erank_field (nan when the field is zero)",
               .convention = "gap_erank",
               .value =
                   [](R r) {
                     return fmt(ratio(r.weights.summary.effective_rank, r.head.field.summary.effective_rank));
                   },
               .aggregated = true});

  spectrum<HeadRow>("field_capped", "the soft-capped field C, rows centred over all n keys", "field_capped",
                    AddedBy::SoftCap, [](R r) -> const HeadSpectrum& { return r.head.field_capped; })
      .add_all(c);
  spectrum<HeadRow>("causal_capped", "the soft-capped causal field, rows centred over the keys they see",
                    "field_capped", AddedBy::SoftCapCausal,
                    [](R r) -> const HeadSpectrum& { return r.head.causal_capped; })
      .add_all(c);

  spectrum<HeadRow>("causal", "the causal field E~c", "field_causal", AddedBy::Causal,
                    [](R r) -> const CausalSpectrum& { return r.head.extras.causal; })
      .add_all(c, {.aggregated_taus = {0.9, 0.99}, .aggregated_erank = true, .k90_per_head = true});
  const auto causal = [](R r) -> const CausalSpectrum& { return r.head.extras.causal; };
  const AddedBy by_causal = AddedBy::Causal;
  c.push_back(number_column<HeadRow>("variance_causal", "||E~c||_F^2, exact", "causal_variance", by_causal,
                                     [=](R r) { return causal(r).variance; }));
  c.push_back(number_column<HeadRow>("rank_causal",
                                     "numerical rank of E~c (a lower bound unless every value was computed)",
                                     "numerical_rank", by_causal, [=](R r) { return causal(r).numerical_rank; }));
  c.push_back({.name = "causal_method",
               .meaning = "how E~c's values were computed: dense or lanczos",
               .convention = "causal_method",
               .added_by = by_causal,
               .value = [=](R r) { return causal(r).method; }});
  c.push_back(number_column<HeadRow>("causal_values",
                                     "singular values computed: all n, or the Krylov dimension reached",
                                     "causal_method", by_causal, [=](R r) {
                                       const CausalSpectrum& cs = causal(r);
                                       return cs.complete ? int(cs.sigma.size()) : cs.krylov_dim;
                                     }));
  c.push_back(number_column<HeadRow>("causal_unexplained",
                                     "share of ||E~c||_F^2 the computed values miss (a rigorous bound)",
                                     "causal_unexplained", by_causal, [=](R r) {
                                       const CausalSpectrum& cs = causal(r);
                                       return cs.variance > 0 ? cs.unexplained / cs.variance : 0.0;
                                     }));
  c.push_back(number_column<HeadRow>("causal_residual", "largest Ritz-pair residual relative to sigma_1",
                                     "causal_residual", by_causal, [=](R r) { return causal(r).residual; }));
  c.push_back({.name = "causal_k_exact",
               .meaning = "1 when the brackets of every k_tau of E~c are single values, else 0",
               .convention = "causal_k_exact",
               .added_by = by_causal,
               .value = [=](R r) { return std::string(causal(r).k_tau_exact ? "1" : "0"); }});
  c.push_back(number_column<HeadRow>("k90_causal_lower", "rigorous lower bound of k90 of E~c", "causal_k_exact",
                                     by_causal, [=](R r) { return causal(r).k_tau_lower[kK90]; }));
  c.push_back(number_column<HeadRow>("k99_causal_lower", "rigorous lower bound of k99 of E~c", "causal_k_exact",
                                     by_causal, [=](R r) { return causal(r).k_tau_lower.back(); }));

  using SpectrumOf = const Spectrum& (*)(R);
  const std::tuple<const char*, const char*, SpectrumOf> data_side[] = {
      {"keys", "Kc, the keys centred over positions", [](R r) -> const Spectrum& { return r.head.extras.keys; }},
      {"queries", "Q, the queries as consumed (uncentred)",
       [](R r) -> const Spectrum& { return r.head.extras.queries; }},
      {"queries_centred", "Qc, the queries centred over positions",
       [](R r) -> const Spectrum& { return r.head.extras.queries_centred; }}};
  for (const auto& [obj, what, get] : data_side) {
    spectrum<HeadRow>(obj, what, "data_side", AddedBy::DataSide, get).add_all(c, {.aggregated_taus = {0.9}});
    c.push_back(number_column<HeadRow>(std::string("rank_") + obj, std::string("numerical rank of ") + what,
                                       "numerical_rank", AddedBy::DataSide, [get = get](R r) { return get(r).rank; }));
  }

  const auto inv = [](R r) -> const FieldInvariants& { return r.head.extras.invariants; };
  const AddedBy by_inv = AddedBy::Invariants;
  c.push_back(number_column<HeadRow>("row_sum_residual",
                                     "max_i |sum_j E~_ij| / max_ij |E~_ij| (0 in exact arithmetic)",
                                     "row_sum_residual", by_inv, [=](R r) { return inv(r).row_sum_residual; }));
  c.push_back(number_column<HeadRow>("max_abs_field", "max_ij |E~_ij|", "row_sum_residual", by_inv,
                                     [=](R r) { return inv(r).max_abs; }));
  c.push_back(number_column<HeadRow>("rank_field", "numerical rank of E~ (at most d_h)", "numerical_rank", by_inv,
                                     [=](R r) { return inv(r).rank; }));
  c.push_back(aggregated(number_column<HeadRow>("col_participation",
                                                "participation ratio of the column energies c_j of E~", "column_energy",
                                                by_inv, [=](R r) { return inv(r).col_participation; })));
  c.push_back(number_column<HeadRow>("col_top1pct_share", "share of the column energy in the largest 1% of columns",
                                     "column_energy", by_inv, [=](R r) { return inv(r).col_top1pct_share; }));
  c.push_back(number_column<HeadRow>("col_top_position", "key position of the largest column energy", "column_energy",
                                     by_inv, [=](R r) { return inv(r).col_top_position; }));
  c.push_back(aggregated(number_column<HeadRow>("key_coherence", "coherence of the centred keys' range",
                                                "key_coherence", by_inv, [=](R r) { return inv(r).key_coherence; })));
  c.push_back(number_column<HeadRow>("key_coherence_position", "key position where the coherence peaks",
                                     "key_coherence", by_inv, [=](R r) { return inv(r).key_coherence_position; }));
  c.push_back(number_column<HeadRow>("key_rank", "numerical rank of Kc the coherence is taken over", "key_coherence",
                                     by_inv, [=](R r) { return inv(r).key_rank; }));
  return c;
}

JsonFields<HeadRow> make_spectra_fields() {
  using R = const HeadRow&;
  using Field = Column<HeadRow, nlohmann::json>;
  const auto index = [](const char* name, const char* meaning, const char* convention, int (*get)(R)) {
    return Field{.name = name, .meaning = meaning, .convention = convention,
                 .value = [get](R r) { return nlohmann::json(get(r)); }};
  };
  const auto sigma = [](const char* name, const char* what, const char* convention, AddedBy by,
                        const std::vector<double>& (*get)(R)) {
    return Field{.name = name, .meaning = std::string("singular values of ") + what + ", descending",
                 .convention = convention, .added_by = by, .value = [get](R r) { return nlohmann::json(get(r)); }};
  };
  return {
      index("window", "window index", "indexing", [](R r) { return r.window.window; }),
      index("layer", "layer index", "indexing", [](R r) { return r.head.layer; }),
      index("head", "query head index", "indexing", [](R r) { return r.head.head; }),
      index("kv_head", "the KV head g the query head reads", "kv_head", [](R r) { return r.head.kv_head; }),
      sigma("field", "E~", "field", AddedBy::Always,
            [](R r) -> const std::vector<double>& { return r.head.field.sigma; }),
      sigma("weights", "W_Q^T W_K", "weights", AddedBy::Always,
            [](R r) -> const std::vector<double>& { return r.weights.sigma; }),
      sigma("field_capped", "the soft-capped field", "field_capped", AddedBy::SoftCap,
            [](R r) -> const std::vector<double>& { return r.head.field_capped.sigma; }),
      sigma("causal_capped", "the soft-capped causal field", "field_capped", AddedBy::SoftCapCausal,
            [](R r) -> const std::vector<double>& { return r.head.causal_capped.sigma; }),
      sigma("causal", "E~c (all n, or the leading Ritz values)", "field_causal", AddedBy::Causal,
            [](R r) -> const std::vector<double>& { return r.head.extras.causal.sigma; }),
      sigma("keys", "Kc", "data_side", AddedBy::DataSide,
            [](R r) -> const std::vector<double>& { return r.head.extras.keys.sigma; }),
      sigma("queries", "Q", "data_side", AddedBy::DataSide,
            [](R r) -> const std::vector<double>& { return r.head.extras.queries.sigma; }),
      sigma("queries_centred", "Qc", "data_side", AddedBy::DataSide,
            [](R r) -> const std::vector<double>& { return r.head.extras.queries_centred.sigma; }),
  };
}

Columns<LayerRow> make_layer_columns() {
  using R = const LayerRow&;
  Columns<LayerRow> c;
  c.push_back(always_column<LayerRow>("window", "window index", "indexing", [](R r) { return r.window; }));
  c.push_back(always_column<LayerRow>("layer", "layer index", "indexing", [](R r) { return r.layer.layer; }));
  c.push_back(always_column<LayerRow>("n", "tokens in the window", "windows", [](R r) { return r.layer.n; }));
  c.push_back(always_column<LayerRow>("d", "model width d (the columns of Xc)", "data_side",
                                      [](R r) { return r.layer.d; }));
  const char* what = "Xc, the attention block's normalised input centred over positions";
  spectrum<LayerRow>("input", what, "data_side", AddedBy::Always,
                     [](R r) -> const Spectrum& { return r.layer.input; })
      .add_all(c);
  c.push_back(always_column<LayerRow>("rank_input", "numerical rank of Xc", "numerical_rank",
                                      [](R r) { return r.layer.input.rank; }));
  return c;
}

JsonFields<LayerRow> make_layer_spectra_fields() {
  using R = const LayerRow&;
  return {{.name = "window", .meaning = "window index", .convention = "indexing",
           .value = [](R r) { return nlohmann::json(r.window); }},
          {.name = "layer", .meaning = "layer index", .convention = "indexing",
           .value = [](R r) { return nlohmann::json(r.layer.layer); }},
          {.name = "input", .meaning = "singular values of Xc, descending", .convention = "data_side",
           .value = [](R r) { return nlohmann::json(r.layer.input.sigma); }}};
}

double quantile(const std::vector<double>& sorted, double p) {
  const double h = (sorted.size() - 1) * p;
  const size_t lo = static_cast<size_t>(std::floor(h));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

// layer, head, kv_head of the plan files' rows (plan.json's conventions define none of them).
template <typename Row>
void add_head_columns(Columns<Row>& c) {
  c.push_back(always_column<Row>("layer", "layer index", "", [](const Row& r) { return r.layer; }));
  c.push_back(always_column<Row>("head", "query head index", "", [](const Row& r) { return r.head; }));
  c.push_back(always_column<Row>("kv_head", "the KV head the query head reads", "", [](const Row& r) { return r.kv_head; }));
}

Columns<PlanRow> make_plan_columns() {
  using R = const PlanRow&;
  Columns<PlanRow> c;
  c.push_back(always_column<PlanRow>("tolerance", "the tolerance EPS on the total-variation distance", "k",
                                     [](R r) { return r.tolerance; }));
  add_head_columns(c);
  c.push_back(always_column<PlanRow>("d_h", "head dimension", "", [](R r) { return r.head_dim; }));
  c.push_back(always_column<PlanRow>("k", "smallest rank whose worst-window TV stays within the tolerance", "k",
                                     [](R r) { return r.k; }));
  c.push_back(always_column<PlanRow>("tv", "worst window's mean TV at rank k", "aggregation",
                                     [](R r) { return r.tv; }));
  c.push_back(always_column<PlanRow>("kl", "worst window's mean KL at rank k", "aggregation",
                                     [](R r) { return r.kl; }));
  c.push_back(always_column<PlanRow>("windows", "windows evaluated", "", [](R r) { return r.windows; }));
  c.push_back(always_column<PlanRow>("flops_saved", "1 - k / d_h", "flops_saved",
                                     [](R r) { return 1.0 - double(r.k) / r.head_dim; }));
  c.push_back(always_column<PlanRow>("key_cache_saved", "1 - kv_group_rank / d_h", "key_cache_saved",
                                     [](R r) { return 1.0 - double(r.kv_group_rank) / r.head_dim; }));
  c.push_back(always_column<PlanRow>("kv_group_rank", "min(d_h, sum of k over the query heads sharing the KV head)",
                                     "key_cache_saved", [](R r) { return r.kv_group_rank; }));
  return c;
}

Columns<PlanCurveRow> make_plan_curve_columns() {
  using R = const PlanCurveRow&;
  Columns<PlanCurveRow> c;
  c.push_back(always_column<PlanCurveRow>("window", "window index", "", [](R r) { return r.window; }));
  add_head_columns(c);
  c.push_back(always_column<PlanCurveRow>("n", "tokens in the window", "", [](R r) { return r.n; }));
  c.push_back(always_column<PlanCurveRow>("k", "rank of the truncated field", "rank_k", [](R r) { return r.k; }));
  c.push_back(always_column<PlanCurveRow>("tv", "mean total-variation distance to the model's attention", "tv",
                                          [](R r) { return r.tv; }));
  c.push_back(always_column<PlanCurveRow>("kl", "mean KL divergence from the model's attention", "kl",
                                          [](R r) { return r.kl; }));
  return c;
}

}  // namespace

const Columns<HeadRow>& heads_columns() { static const auto table = make_heads_columns(); return table; }
const JsonFields<HeadRow>& spectra_fields() { static const auto table = make_spectra_fields(); return table; }
const Columns<LayerRow>& layer_columns() { static const auto table = make_layer_columns(); return table; }
const JsonFields<LayerRow>& layer_spectra_fields() {
  static const auto table = make_layer_spectra_fields();
  return table;
}
// The configuration columns of both compress files.
template <typename Row>
void add_compress_config(Columns<Row>& c) {
  c.push_back({.name = "method", .meaning = "how the query/key maps were fitted: pca, field or weights",
               .convention = "methods", .value = [](const Row& r) { return r.method; }});
  c.push_back({.name = "policy", .meaning = "how ranks were shared among heads: uniform or field",
               .convention = "policies", .value = [](const Row& r) { return r.policy; }});
  c.push_back(always_column<Row>("budget", "share of the key dimensions asked to be kept model-wide", "budget",
                                 [](const Row& r) { return r.budget; }));
}

Columns<CompressCurveRow> make_compress_curve_columns() {
  using R = const CompressCurveRow&;
  Columns<CompressCurveRow> c;
  add_compress_config(c);
  c.push_back(always_column<CompressCurveRow>("key_dims", "key dimensions kept, summed over layers and KV heads",
                                              "budget", [](R r) { return r.key_dims; }));
  c.push_back(always_column<CompressCurveRow>("key_cache_saved", "1 - key_dims / (layers * KV heads * d_h)",
                                              "key_cache_saved",
                                              [](R r) { return 1.0 - double(r.key_dims) / r.key_dims_total; }));
  c.push_back(always_column<CompressCurveRow>("ppl_orig", "perplexity of the original model on the evaluation text",
                                              "perplexity", [](R r) { return r.ppl_orig; }));
  c.push_back(always_column<CompressCurveRow>("ppl", "perplexity of the compressed model", "perplexity",
                                              [](R r) { return r.ppl; }));
  c.push_back(always_column<CompressCurveRow>("ppl_change", "ppl / ppl_orig - 1", "perplexity",
                                              [](R r) { return r.ppl / r.ppl_orig - 1.0; }));
  c.push_back(always_column<CompressCurveRow>("kl_mean", "mean over evaluation tokens of KL(P_orig || P_comp)", "kl",
                                              [](R r) { return r.kl_mean; }));
  c.push_back(always_column<CompressCurveRow>("kl_median", "median of the per-token KL", "kl",
                                              [](R r) { return r.kl_median; }));
  c.push_back(always_column<CompressCurveRow>("kl_p95", "95th percentile of the per-token KL", "kl",
                                              [](R r) { return r.kl_p95; }));
  c.push_back(always_column<CompressCurveRow>("kl_p99", "99th percentile of the per-token KL", "kl",
                                              [](R r) { return r.kl_p99; }));
  c.push_back(always_column<CompressCurveRow>("kl_max", "largest per-token KL", "kl", [](R r) { return r.kl_max; }));
  c.push_back(always_column<CompressCurveRow>("top1_agreement", "share of tokens whose most likely next token is the same",
                                              "top1", [](R r) { return r.top1; }));
  c.push_back(always_column<CompressCurveRow>("tv_mean", "mean attention TV over heads, windows and rows", "tv",
                                              [](R r) { return r.tv; }));
  return c;
}

Columns<CompressHeadRow> make_compress_head_columns() {
  using R = const CompressHeadRow&;
  Columns<CompressHeadRow> c;
  add_compress_config(c);
  c.push_back(always_column<CompressHeadRow>("layer", "layer index", "indexing", [](R r) { return r.layer; }));
  c.push_back(always_column<CompressHeadRow>("kv_head", "KV head index", "indexing", [](R r) { return r.kv_head; }));
  c.push_back(always_column<CompressHeadRow>("d_h", "head dimension", "", [](R r) { return r.head_dim; }));
  c.push_back(always_column<CompressHeadRow>("k", "the KV head's rank: key dimensions its cache keeps", "budget",
                                             [](R r) { return r.k; }));
  c.push_back(always_column<CompressHeadRow>("field_share", "share of the pooled calibration field energy the first k "
                                             "dimensions hold", "field_share", [](R r) { return r.field_share; }));
  c.push_back(always_column<CompressHeadRow>("tv", "mean attention TV of the KV head's query heads on the evaluation "
                                             "windows", "tv", [](R r) { return r.tv; }));
  return c;
}

const Columns<CompressCurveRow>& compress_curve_columns() {
  static const auto table = make_compress_curve_columns();
  return table;
}
const Columns<CompressHeadRow>& compress_head_columns() {
  static const auto table = make_compress_head_columns();
  return table;
}

const Columns<PlanRow>& plan_columns() { static const auto table = make_plan_columns(); return table; }
const Columns<PlanCurveRow>& plan_curve_columns() {
  static const auto table = make_plan_curve_columns();
  return table;
}

Columns<HeadSummaryRow> head_summary_columns(const std::vector<std::string>& metrics) {
  using R = const HeadSummaryRow&;
  Columns<HeadSummaryRow> c;
  c.push_back(always_column<HeadSummaryRow>("layer", "layer index", "indexing", [](R r) { return r.layer; }));
  c.push_back(always_column<HeadSummaryRow>("head", "query head index", "indexing", [](R r) { return r.head; }));
  c.push_back({.name = "kv_head", .meaning = "the KV head the query head reads", .convention = "kv_head",
               .value = [](R r) { return r.kv_head; }});
  c.push_back(always_column<HeadSummaryRow>("windows", "windows the head was analysed in", "head_summary",
                                            [](R r) { return r.windows; }));
  c.push_back({.name = "k90_weights", .meaning = "k90 of W_Q^T W_K (the same in every window)", .convention = "k_tau",
               .value = [](R r) { return r.k90_weights; }});
  using Stat = double (*)(const std::vector<double>&);
  const std::pair<const char*, Stat> stats[] = {
      {"median", [](const std::vector<double>& v) { return quantile(v, 0.5); }},
      {"q25", [](const std::vector<double>& v) { return quantile(v, 0.25); }},
      {"q75", [](const std::vector<double>& v) { return quantile(v, 0.75); }},
      {"iqr", [](const std::vector<double>& v) { return quantile(v, 0.75) - quantile(v, 0.25); }},
      {"min", [](const std::vector<double>& v) { return v.front(); }},
      {"max", [](const std::vector<double>& v) { return v.back(); }}};
  for (size_t m = 0; m < metrics.size(); ++m) {
    AddedBy by = AddedBy::Always;
    for (const auto& h : heads_columns())
      if (h.name == metrics[m]) by = h.added_by;
    for (const auto& [stat, f] : stats)
      c.push_back({.name = metrics[m] + "_" + stat,
                   .meaning = std::string(stat) + " over windows of " + metrics[m] + " (nan when it has no value)",
                   .convention = "head_summary",
                   .added_by = by,
                   .value = [m, f = f](R r) {
                     return r.values[m].empty() ? std::string("nan") : fmt(f(r.values[m]));
                   }});
  }
  return c;
}

}  // namespace attnspec
