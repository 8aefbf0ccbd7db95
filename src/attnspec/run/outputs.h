// The files of a run (INTERFACE.md): heads.csv, spectra.jsonl, summary.json (and head_summary.csv,
// layers.csv / layers.jsonl: extras.h). They are written to
// hidden partial files in the output folder and renamed into place only when the run completes, so
// a failed run never leaves a half-written result.
#pragma once

#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attnspec/run/analysis.h"

namespace attnspec {

// The conventions every number follows (METRICS.md), recorded in summary.json.
nlohmann::json conventions_json();

// The model as every command's summary names it: path, family, shapes, softmax scales, windows and
// attention kind (commands add what else they record).
nlohmann::json model_summary(const std::filesystem::path& path, const ModelConfig& config);

// heads.csv: the columns INTERFACE.md fixes, then the remaining summaries, then those the options
// add; spectra.jsonl likewise (the columns and their order: columns.h).
std::string heads_csv_header(const AnalysisOptions& options = {});
std::string heads_csv_rows(const WindowResult& w, const WeightSpectra& weights);
std::string spectra_jsonl_rows(const WindowResult& w, const WeightSpectra& weights);

// min / median / max of the per-head headline numbers, from heads.csv rows (so a resumed run and an
// uninterrupted one aggregate the same bytes).
nlohmann::json aggregates_from_csv(const std::string& heads_csv);

// A run's output folder. Each finished window is written to its own files inside a hidden state
// folder (DIR/.attnspec-run/) with write-then-rename, so a run killed at any moment keeps every
// window it finished. finish() concatenates them in window order into heads.csv (and
// spectra.jsonl), writes summary.json, and removes the state. A run that fails on bad input
// removes what it created.
class RunDirectory {
 public:
  // `fingerprint` identifies the run's inputs and options; resume requires an exact match.
  RunDirectory(const std::filesystem::path& dir, const nlohmann::json& fingerprint, bool save_spectra, bool resume);
  ~RunDirectory();  // unless finished or kept: removes the state (and the folder, if it created it)

  bool window_done(int window) const;
  void add_window(const WindowResult& w, const WeightSpectra& weights);
  // Returns heads.csv's content (for aggregates) after writing everything into place.
  std::string finish(int windows, const std::function<nlohmann::json(const std::string& heads_csv)>& summary);
  void keep_state() { keep_ = true; }  // an interrupted run: leave the finished windows for --resume
  // What each window computes beyond E~ (extra columns, layers.csv); set before the first window.
  void set_options(const AnalysisOptions& options) { options_ = options; }
  const std::filesystem::path& state_dir() const { return state_; }

 private:
  std::filesystem::path dir_, state_;
  bool save_spectra_, created_dir_ = false, finished_ = false, keep_ = false;
  AnalysisOptions options_;
};

// Writes a finished run's files into `dir` from the rows of all its windows (in window order, without
// headers): heads.csv, head_summary.csv, spectra.jsonl / layers.csv / layers.jsonl as the options ask
// (stale ones of other options removed), then summary.json (from heads.csv's content). The one place
// that decides what a run folder holds; returns heads.csv's content.
struct RunRows {
  std::string heads, spectra, layers, layer_spectra;
};
std::string write_run_files(const std::filesystem::path& dir, const AnalysisOptions& options, bool save_spectra,
                            const RunRows& rows,
                            const std::function<nlohmann::json(const std::string& heads_csv)>& summary);

// Writes `content` to `path` atomically (temporary file, fsync, rename).
void write_file_atomically(const std::filesystem::path& path, const std::string& content);

}  // namespace attnspec
