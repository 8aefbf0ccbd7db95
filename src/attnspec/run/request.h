// What a run is asked to do: one type for `analyze`, `plan` and the sweep's blocks of windows.
// Its fields are set from the option table (options.h), which the command line, the Python
// binding and the Python API all read, so a field's name, default and check live there once.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "attnspec/run/extras.h"

namespace attnspec {

struct Request {
  // The input: a model, and a text (tokenized with the checkpoint's tokenizer, or `tokenizer`'s)
  // or token ids used as given, cut into consecutive windows of ctx tokens.
  std::filesystem::path model;      // checkpoint folder, .gguf or llama2.c file (its config is named in errors)
  std::filesystem::path text;       // UTF-8 text ...
  std::filesystem::path token_ids;  // ... or token ids
  std::filesystem::path tokenizer;  // tokenizer folder or file when not the checkpoint's own
  std::filesystem::path out;        // output folder
  int ctx = 0;
  int max_windows = 0;       // 0: all windows
  int strip_gutenberg = -1;  // -1 auto, 0 never, 1 always
  bool allow_long_context = false;
  int threads = 0;  // 0: all cores
  bool quiet = false;
  bool profile = false;  // print where the time went (run/profile.h)

  // analyze
  bool save_spectra = false;
  bool resume = false;  // continue an unfinished run in `out` (same inputs and options)
  int layers = 0;       // analyze layers 0 .. layers-1 (0: all)
  AnalysisOptions options;  // --field, --data-side, --invariants (extras.h)
  // Which forward pass computes Q and K: "native" (attnspec's own, run_analyze) or "torch" (a
  // PyTorch model as transformers loads it, on `device` in `dtype`: python/attnspec/torch.py).
  std::string engine = "native", device = "auto", dtype = "float32";

  // plan
  std::vector<double> tolerances;  // EPS values, each in (0, 1)
  bool geometric = false;          // ranks 0..8 then x1.25 steps instead of every k

  // compress: maps fitted on `calibrate`, judged on `evaluate` (disjoint texts)
  std::vector<std::filesystem::path> calibrate, evaluate;
  int calibration_windows = 0, evaluation_windows = 0;  // at most this many windows of each
  std::vector<double> budgets;                          // shares of key dimensions kept, in (0, 1]
  std::vector<std::string> methods, policies;           // pca / field / weights; uniform / field
  std::string export_method, export_policy;             // the maps written to projections.safetensors
  double export_budget = 0;
};

}  // namespace attnspec
