// `attnspec analyze` as a library call: inputs -> windows -> forward + spectra -> files. The CLI
// and the Python binding both go through here, so their results are the same by construction.
#pragma once

#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "attnspec/run/inputs.h"

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

// The token stream of a text file, as `attnspec tokenize` prints it (no special tokens).
std::vector<int32_t> tokenize_file(const std::filesystem::path& tokenizer_dir, const std::filesystem::path& text,
                                   int strip_gutenberg);

}  // namespace attnspec
