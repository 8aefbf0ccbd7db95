// What `attnspec analyze` computes beyond the paper's two spectra, on request:
//   --field causal|both   the causal energy field E~c (causal.h), per head
//   --data-side           the generated component: Xc per layer (layers.csv), Q, Qc, Kc per head
//   --invariants          the invariants of arXiv 2605.02907 per head (invariants.h)
// and the files they add: extra heads.csv columns (after the fixed ones, only when requested),
// extra spectra.jsonl arrays, layers.csv, and head_summary.csv (always: the spread of k90 over
// windows per head).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attnspec/model/forward.h"
#include "attnspec/model/model.h"
#include "attnspec/spectra/causal.h"
#include "attnspec/spectra/invariants.h"
#include "attnspec/spectra/metrics.h"

namespace attnspec {

enum class FieldMode { Unmasked, Causal, Both };

struct AnalysisOptions {
  FieldMode field = FieldMode::Unmasked;
  bool data_side = false;
  bool invariants = false;
  CausalOptions causal;
  // Set from the model, not the command line: its attention logits are soft-capped (Gemma2), so
  // heads also get the capped field's spectra (capped.h) and the *_capped columns.
  bool capped = false;
  bool causal_field() const { return field != FieldMode::Unmasked; }
  bool any() const { return causal_field() || data_side || invariants; }
};

FieldMode parse_field_mode(const std::string& name);  // "unmasked", "causal", "both"; InputError otherwise
const char* field_mode_name(FieldMode mode);
nlohmann::json options_json(const AnalysisOptions& options);
// Conventions of the extra quantities the options switch on (merged into summary.json's).
nlohmann::json extras_conventions_json(const AnalysisOptions& options);

struct Spectrum {
  std::vector<double> sigma;
  SpectrumSummary summary;
  int rank = 0;  // numerical rank, n * eps_f32 * sigma_1
};

struct HeadExtras {
  CausalSpectrum causal;                    // --field causal|both
  Spectrum keys, queries, queries_centred;  // --data-side: Kc, Q, Qc
  FieldInvariants invariants;               // --invariants
};

struct LayerExtras {
  int layer = 0, n = 0, d = 0;
  Spectrum input;  // Xc: the attention block's normalised input, centred over positions
};

void compute_head_extras(const AnalysisOptions& options, const ModelConfig& c, const LayerActivations& a, int head,
                         HeadExtras& out);
LayerExtras compute_layer_extras(const ModelConfig& c, const LayerActivations& a);

// Bytes per thread the extras need for n-token windows (for the memory guard).
size_t extras_bytes(const AnalysisOptions& options, int n);

struct WindowResult;

// layers.csv / layers.jsonl (--data-side). The extra heads.csv columns and spectra.jsonl arrays,
// like every file's columns, are in the column registry (columns.h).
std::string layers_csv_header();
std::string layers_csv_rows(const WindowResult& w);
std::string layers_jsonl_rows(const WindowResult& w);
// head_summary.csv from heads.csv's content: per (layer, head) the spread of k90_field (and of
// k90_causal when present) over windows.
std::string head_summary_csv(const std::string& heads_csv);

// A CSV's columns by header name (small files; used by head_summary_csv and the aggregates).
struct CsvTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  int column(const std::string& name) const;  // -1 when absent
};
CsvTable parse_csv(const std::string& text);

}  // namespace attnspec
