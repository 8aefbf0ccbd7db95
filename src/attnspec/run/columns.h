// Every column of every file attnspec writes, in one registry: its name, what it means, the key of
// the conventions (summary.json's, or plan.json's for the plan files) that define it, the option
// that adds it, and how its value is written. The writers (outputs.cpp, extras.cpp, plan.cpp)
// iterate these tables, so a column's header and its value come from the same entry.
//
//   heads.csv          heads_columns()         one row per (window, layer, head)
//   spectra.jsonl      spectra_fields()        the same rows' singular values (--save-spectra)
//   layers.csv         layer_columns()         one row per (window, layer) (--data-side)
//   layers.jsonl       layer_spectra_fields()  their singular values (--data-side --save-spectra)
//   head_summary.csv   head_summary_columns()  one row per (layer, head), from heads.csv
//   plan.csv           plan_columns()          one row per (tolerance, layer, head)
//   plan_curves.csv    plan_curve_columns()    one row per (window, layer, head, rank)
//   compress_curves.csv  compress_curve_columns()  one row per (method, policy, budget)
//   compress_heads.csv   compress_head_columns()   one row per (method, policy, budget, layer, KV head)
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attnspec/run/analysis.h"
#include "attnspec/run/extras.h"

namespace attnspec {

// Which option adds a column (the plan files' columns are all Always).
enum class AddedBy {
  Always,
  SoftCap,        // a model with soft-capped attention logits (AnalysisOptions::capped)
  SoftCapCausal,  // a soft-capped model with --field causal|both
  Causal,         // --field causal|both
  DataSide,       // --data-side
  Invariants,     // --invariants
};
bool is_added(AddedBy by, const AnalysisOptions& options);

template <typename Row, typename Value = std::string>
struct Column {
  std::string name;
  std::string meaning;
  std::string convention;  // key of the conventions that define it; empty when the meaning is all there is
  AddedBy added_by = AddedBy::Always;
  std::function<Value(const Row&)> value;
  // heads.csv only: summary.json's "aggregates" hold its min / median / max over all rows, and
  // head_summary.csv its spread over windows per head. A column some option adds is summarised
  // when heads.csv holds it.
  bool aggregated = false;
  bool spread_per_head = false;
};

// The rows each file is written from.
struct HeadRow {
  const WindowResult& window;
  const HeadResult& head;
  const HeadSpectrum& weights;  // W_Q^T W_K of the head
};
struct LayerRow {
  int window;
  const LayerExtras& layer;
};
struct HeadSummaryRow {
  int layer = 0, head = 0, windows = 0;
  std::string kv_head, k90_weights;  // as heads.csv wrote them
  std::vector<std::vector<double>> values;  // per summarised column (head_summary_columns' `metrics`), sorted
};
struct PlanRow {
  double tolerance = 0;
  int layer = 0, head = 0, kv_head = 0, head_dim = 0, k = 0, windows = 0, kv_group_rank = 0;
  double tv = 0, kl = 0;
};
struct PlanCurveRow {
  int window = 0, layer = 0, head = 0, kv_head = 0, n = 0, k = 0;
  double tv = 0, kl = 0;
};
// A compressed model's quality on the evaluation text (compress.cpp).
struct CompressCurveRow {
  std::string method, policy;
  double budget = 0;
  long key_dims = 0, key_dims_total = 0;  // kept over all layers and KV heads, and d_h * KV heads * layers
  double ppl_orig = 0, ppl = 0;
  double kl_mean = 0, kl_median = 0, kl_p95 = 0, kl_p99 = 0, kl_max = 0;
  double top1 = 0, tv = 0;
};
struct CompressHeadRow {
  std::string method, policy;
  double budget = 0;
  int layer = 0, kv_head = 0, head_dim = 0, k = 0;
  double field_share = 0, tv = 0;
};

template <typename Row>
using Columns = std::vector<Column<Row>>;
template <typename Row>
using JsonFields = std::vector<Column<Row, nlohmann::json>>;

const Columns<HeadRow>& heads_columns();
const JsonFields<HeadRow>& spectra_fields();
const Columns<LayerRow>& layer_columns();
const JsonFields<LayerRow>& layer_spectra_fields();
// layer, head, kv_head, windows, k90_weights, then six statistics of each of `metrics` (names of
// heads.csv columns), in HeadSummaryRow::values' order.
Columns<HeadSummaryRow> head_summary_columns(const std::vector<std::string>& metrics);
const Columns<PlanRow>& plan_columns();
const Columns<PlanCurveRow>& plan_curve_columns();
const Columns<CompressCurveRow>& compress_curve_columns();
const Columns<CompressHeadRow>& compress_head_columns();

// A CSV header line, a row line (appended to `out`) and a JSON object of `columns`: those `options`
// adds, or every one of them when `options` is null.
template <typename Row, typename Value>
std::string csv_header(const std::vector<Column<Row, Value>>& columns, const AnalysisOptions* options = nullptr) {
  std::string out;
  for (const auto& c : columns)
    if (!options || is_added(c.added_by, *options)) {
      if (!out.empty()) out += ',';
      out += c.name;
    }
  return out + "\n";
}

template <typename Row>
void append_csv_row(std::string& out, const Columns<Row>& columns, const Row& row,
                    const AnalysisOptions* options = nullptr) {
  bool first = true;
  for (const auto& c : columns)
    if (!options || is_added(c.added_by, *options)) {
      if (!first) out += ',';
      out += c.value(row);
      first = false;
    }
  out += '\n';
}

template <typename Row>
nlohmann::json json_row(const JsonFields<Row>& fields, const Row& row, const AnalysisOptions* options = nullptr) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& f : fields)
    if (!options || is_added(f.added_by, *options)) j[f.name] = f.value(row);
  return j;
}

}  // namespace attnspec
