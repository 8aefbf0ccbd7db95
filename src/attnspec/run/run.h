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

namespace attnspec {

struct AnalyzeRequest {
  std::filesystem::path model;      // checkpoint folder
  std::filesystem::path text;       // UTF-8 text (tokenized with the checkpoint's tokenizer) ...
  std::filesystem::path token_ids;  // ... or token ids, used as given
  std::filesystem::path tokenizer;  // tokenizer folder when not the checkpoint's own (optional)
  std::filesystem::path out;
  int ctx = 0;
  int max_windows = 0;  // 0: all windows
  int threads = 0;      // 0: all cores
  int strip_gutenberg = -1;  // -1 auto, 0 never, 1 always
  bool save_spectra = false;
  bool allow_long_context = false;
  bool quiet = false;
  bool resume = false;  // continue an unfinished run in `out` (same inputs and options)
  int layers = 0;       // analyze layers 0 .. layers-1 (0: all)

  InputSource input() const {
    return {model, text, token_ids, tokenizer, ctx, max_windows, strip_gutenberg, allow_long_context};
  }
  AnalysisOptions options;  // --field, --data-side, --invariants (extras.h)
};

// A run stopped by SIGINT at a window boundary; its finished windows are kept for --resume.
class Interrupted : public std::runtime_error {
 public:
  explicit Interrupted(const std::string& what) : std::runtime_error(what) {}
};

// Runs the analysis and writes heads.csv, summary.json (and spectra.jsonl) into request.out.
// Returns the summary. Throws InputError on bad input, before anything is written.
nlohmann::json run_analyze(const AnalyzeRequest& request);

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
RunDescription describe_run(const AnalyzeRequest& request);

// The rows run_analyze writes for one window: heads.csv, spectra.jsonl (save_spectra), layers.csv
// and layers.jsonl (data_side; the latter with save_spectra), each without its header.
struct WindowRows {
  int window = 0;
  std::string heads_csv, spectra_jsonl, layers_csv, layers_jsonl;
};

// Windows [first, last) of the run. `weights` (the model's W_Q^T W_K spectra for the analyzed
// layers, from compute_weight_spectra) is computed here when null. Refused up front, like
// run_analyze, when the memory guard's estimate exceeds the available memory; Interrupted on SIGINT.
std::vector<WindowRows> analyze_window_block(const AnalyzeRequest& request, int first, int last,
                                             const WeightSpectra* weights = nullptr);

// Writes the run's files into request.out from the rows of all its windows, in window order; returns
// summary.json's content.
nlohmann::json write_run_from_rows(const AnalyzeRequest& request, const std::vector<WindowRows>& rows);

// The token stream of a text file, as `attnspec tokenize` prints it (no special tokens).
std::vector<int32_t> tokenize_file(const std::filesystem::path& tokenizer_dir, const std::filesystem::path& text,
                                   int strip_gutenberg);

}  // namespace attnspec
