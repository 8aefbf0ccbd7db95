// The files of a run (INTERFACE.md): heads.csv, spectra.jsonl, summary.json. They are written to
// hidden partial files in the output folder and renamed into place only when the run completes, so
// a failed run never leaves a half-written result.
#pragma once

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attnspec/run/analysis.h"

namespace attnspec {

// The conventions every number follows (METRICS.md), recorded in summary.json.
nlohmann::json conventions_json();

// heads.csv: the columns INTERFACE.md fixes, then the remaining summaries.
std::string heads_csv_header();
std::string heads_csv_rows(const WindowResult& w, const WeightSpectra& weights);
std::string spectra_jsonl_rows(const WindowResult& w, const WeightSpectra& weights);

// min / median / max of the per-head headline numbers over all rows written.
class Aggregates {
 public:
  void add(const WindowResult& w, const WeightSpectra& weights);
  nlohmann::json to_json() const;

 private:
  std::vector<double> k90_field_, k90_weights_, gap_k90_, gap_erank_, erank_field_, erank_weights_;
};

class OutputWriter {
 public:
  // Creates `dir` if needed; nothing visible appears in it until commit().
  OutputWriter(const std::filesystem::path& dir, bool save_spectra);
  ~OutputWriter();  // removes the partial files unless committed
  void add_window(const WindowResult& w, const WeightSpectra& weights);
  void commit(const nlohmann::json& summary);  // writes summary.json, renames everything into place

 private:
  std::filesystem::path dir_, heads_tmp_, spectra_tmp_;
  std::FILE* heads_ = nullptr;
  std::FILE* spectra_ = nullptr;
  bool committed_ = false;
};

}  // namespace attnspec
