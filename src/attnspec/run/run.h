// `attnspec analyze` as a library call: inputs -> windows -> forward + spectra -> files. The CLI
// and the Python binding both go through here, so their results are the same by construction.
#pragma once

#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "attnspec/run/inputs.h"

#include "attnspec/run/analysis.h"
#include "attnspec/run/extras.h"
#include "attnspec/run/request.h"

namespace attnspec {

// A run stopped by SIGINT at a window boundary; its finished windows are kept for --resume.
class Interrupted : public std::runtime_error {
 public:
  explicit Interrupted(const std::string& what) : std::runtime_error(what) {}
};

// Runs the analysis and writes heads.csv, summary.json (and spectra.jsonl) into request.out.
// Returns the summary. Throws InputError on bad input, before anything is written.
nlohmann::json run_analyze(const Request& request);

// The pieces of run_analyze that `attnspec sweep` distributes over processes and machines
// (python/attnspec/sweep.py): a run described without computing it, blocks of its windows computed
// on their own with the W_Q^T W_K spectra shared, and the run's files assembled from the blocks'
// rows. The rows are run_analyze's own, so the files are byte for byte those of `analyze`, except
// that summary.json leaves out what depends on the machine (threads, timings).

struct RunDescription {
  int windows = 0;          // windows the run has (after max_windows)
  int layers = 0;           // layers analyzed
  size_t memory_bytes = 0;  // the memory guard's estimate beyond the mapped checkpoint, for rq.threads threads
  nlohmann::json input;     // summary.json's "input"
};
// Reads and checks the model and the input (InputError as run_analyze) and computes nothing.
RunDescription describe_run(const Request& request);

// The rows run_analyze writes for one window: heads.csv, spectra.jsonl (save_spectra), layers.csv
// and layers.jsonl (data_side; the latter with save_spectra), each without its header.
struct WindowRows {
  int window = 0;
  std::string heads_csv, spectra_jsonl, layers_csv, layers_jsonl;
};

// Windows [first, last) of the run. `weights` (the model's W_Q^T W_K spectra for the analyzed
// layers, from compute_weight_spectra) is computed here when null. Refused up front, like
// run_analyze, when the memory guard's estimate exceeds the available memory; Interrupted on SIGINT.
std::vector<WindowRows> analyze_window_block(const Request& request, int first, int last,
                                             const WeightSpectra* weights = nullptr);

// Writes the run's files into request.out from the rows of all its windows, in window order; returns
// summary.json's content.
nlohmann::json write_run_from_rows(const Request& request, const std::vector<WindowRows>& rows);

// The token stream of a text file, as `attnspec tokenize` prints it (no special tokens).
std::vector<int32_t> tokenize_file(const std::filesystem::path& tokenizer_dir, const std::filesystem::path& text,
                                   int strip_gutenberg);

}  // namespace attnspec
