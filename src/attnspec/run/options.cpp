#include "attnspec/run/options.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "attnspec/common/error.h"
#include "attnspec/io/hub.h"

namespace attnspec {
namespace {

[[noreturn]] void bad_value(const char* name, const std::string& value, const std::string& want) {
  throw InputError(std::string("--") + name + ": " + want + " (got '" + value + "')");
}

void integer(const char* name, const std::string& v, long long min) {
  errno = 0;
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno == ERANGE || x > std::numeric_limits<int>::max() ||
      x < std::numeric_limits<int>::min())
    bad_value(name, v, "an integer is needed");
  if (x < min) bad_value(name, v, "must be at least " + std::to_string(min));
}

void number(const char* name, const std::string& v) {
  errno = 0;
  char* end = nullptr;
  std::strtod(v.c_str(), &end);
  if (v.empty() || *end != '\0' || errno == ERANGE) bad_value(name, v, "a number is needed");
}

int strip_mode(const std::string& v) { return v == "auto" ? -1 : v == "yes" ? 1 : 0; }

// One table row's `apply`: a captureless lambda per field (the table stays a plain list of data).
#define ATTNSPEC_PATH(field) [](Request& rq, const std::string& v) { rq.field = v; }
// set_option has checked the text against the row's type before `apply` reads it.
#define ATTNSPEC_INT(field) [](Request& rq, const std::string& v) { rq.field = std::stoi(v); }
#define ATTNSPEC_FLAG(field) [](Request& rq, const std::string& v) { rq.field = v == "true"; }

}  // namespace

const char* command_name(Command command) {
  return command == kAnalyze ? "analyze" : command == kPlan ? "plan" : command == kTokenize ? "tokenize" : "compress";
}

std::string Option::python_keyword() const {
  if (python_name) return python_name;
  std::string s = name;
  for (char& c : s)
    if (c == '-') c = '_';
  return s;
}

const std::vector<Option>& options() {
  using T = OptionType;
  const CausalOptions causal;  // the spectra library's defaults
  static const std::vector<Option> table = {
      // What to read.
      {"model", T::Path, kAnalyze | kPlan | kTokenize | kCompress,
       "checkpoint folder (config.json + *.safetensors), .gguf file, llama2.c .bin, or Hugging Face hub id "
       "(tokenize: a tokenizer folder too)",
       "", true, {}, kNoMinimum, nullptr, nullptr, nullptr, ATTNSPEC_PATH(model)},
      {"text", T::Path, kAnalyze | kPlan | kTokenize, "UTF-8 text, tokenized with the checkpoint's tokenizer", "", false,
       {}, kNoMinimum, nullptr, nullptr, nullptr, ATTNSPEC_PATH(text)},
      {"token-ids", T::Path, kAnalyze | kPlan, "token ids (JSON array or whitespace/comma separated)", "", false, {},
       kNoMinimum, nullptr, nullptr, "text", ATTNSPEC_PATH(token_ids)},
      {"tokenizer", T::Path, kAnalyze | kPlan | kCompress,
       "tokenizer folder (or .gguf / llama2.c tok*.bin file), when the checkpoint has none of its own", "", false, {},
       kNoMinimum, nullptr, nullptr, nullptr, ATTNSPEC_PATH(tokenizer)},
      // How to cut it into windows.
      {"ctx", T::Int, kAnalyze, "window length in tokens (consecutive, non-overlapping windows)", "1024", false, {},
       kNoMinimum, nullptr, nullptr, nullptr, ATTNSPEC_INT(ctx)},
      {"ctx", T::Int, kPlan | kCompress, "window length in tokens (consecutive, non-overlapping windows)", "256", false, {},
       kNoMinimum, nullptr, nullptr, nullptr, ATTNSPEC_INT(ctx)},
      {"max-windows", T::Int, kAnalyze | kPlan, "at most this many windows (0: all)", "0", false, {}, 0,
       nullptr, nullptr, nullptr, ATTNSPEC_INT(max_windows)},
      {"strip-gutenberg", T::Choice, kAnalyze | kPlan | kCompress, "remove Project Gutenberg header/footer: auto, yes, no", "auto",
       false, {"auto", "yes", "no"}, kNoMinimum, nullptr, nullptr, nullptr,
       [](Request& rq, const std::string& v) { rq.strip_gutenberg = strip_mode(v); }},
      {"strip-gutenberg", T::Choice, kTokenize, "remove Project Gutenberg header/footer: auto, yes, no",
       "no", false, {"auto", "yes", "no"}, kNoMinimum, nullptr, nullptr, nullptr,
       [](Request& rq, const std::string& v) { rq.strip_gutenberg = strip_mode(v); }},
      {"allow-long-context", T::Flag, kAnalyze | kPlan | kCompress, "allow --ctx beyond max_position_embeddings", "false", false,
       {}, kNoMinimum, nullptr, nullptr, nullptr, ATTNSPEC_FLAG(allow_long_context)},
      // Where the results go, and how the run behaves.
      {"out", T::Path, kAnalyze | kPlan | kCompress,
       "output folder (analyze: heads.csv, summary.json, spectra.jsonl; plan: plan.csv, plan_curves.csv, plan.json; "
       "compress: compress_curves.csv, compress_heads.csv, compress.json, projections.safetensors)",
       "", true, {}, kNoMinimum, nullptr, nullptr, nullptr, ATTNSPEC_PATH(out)},
      {"save-spectra", T::Flag, kAnalyze, "also write every singular value to spectra.jsonl", "false", false, {},
       kNoMinimum, nullptr, "true", nullptr, ATTNSPEC_FLAG(save_spectra)},
      {"threads", T::Int, kAnalyze | kPlan | kCompress, "threads for BLAS and the per-head work (0: all cores)", "0", false,
       {}, 0, nullptr, nullptr, nullptr, ATTNSPEC_INT(threads)},
      {"quiet", T::Flag, kAnalyze | kPlan | kCompress, "no progress lines", "false", false, {}, kNoMinimum, nullptr, "true",
       nullptr, ATTNSPEC_FLAG(quiet)},
      {"profile", T::Flag, kAnalyze,
       "print the time of each stage (load, dequantize, each product, attention, spectra, output) and its GFLOP/s "
       "against this machine's sgemm rate",
       "false", false, {}, kNoMinimum, nullptr, nullptr, nullptr, ATTNSPEC_FLAG(profile)},
      {"resume", T::Flag, kAnalyze, "continue an interrupted run in --out (same inputs and options)", "false", false,
       {}, kNoMinimum, nullptr, nullptr, nullptr, ATTNSPEC_FLAG(resume)},
      {"layers", T::Int, kAnalyze, "analyze the first this many layers only (0: all)", "0", false, {}, 0,
       nullptr, nullptr, nullptr, ATTNSPEC_INT(layers)},
      // The forward pass: attnspec's own, or PyTorch's through transformers (python/attnspec/torch.py).
      {"engine", T::Choice, kAnalyze,
       "forward pass: native (attnspec's own, the families of 'attnspec models') or torch (any decoder transformers "
       "loads, in PyTorch; needs torch and transformers)",
       "native", false, {"native", "torch"}, kNoMinimum, nullptr, nullptr, nullptr,
       [](Request& rq, const std::string& v) { rq.engine = v; }},
      {"device", T::Choice, kAnalyze, "--engine torch: where the model runs (auto: cuda, then mps, then cpu)", "auto",
       false, {"auto", "cpu", "cuda", "mps"}, kNoMinimum, nullptr, nullptr, nullptr,
       [](Request& rq, const std::string& v) { rq.device = v; }},
      {"dtype", T::Choice, kAnalyze,
       "--engine torch: the model's dtype (auto: as the checkpoint stores it); Q and K are reduced in float64", "float32",
       false, {"float32", "bfloat16", "float16", "auto"}, kNoMinimum, nullptr, nullptr, nullptr,
       [](Request& rq, const std::string& v) { rq.dtype = v; }},
      // Beyond the paper (README "Beyond the paper"): extra columns and files only when asked for.
      {"field", T::Choice, kAnalyze,
       "energy field(s): unmasked (the paper's E~), causal or both (add the causal field E~c as *_causal "
       "columns; the fixed *_field columns stay E~)",
       "unmasked", false, {"unmasked", "causal", "both"}, kNoMinimum, nullptr, nullptr, nullptr,
       [](Request& rq, const std::string& v) { rq.options.field = parse_field_mode(v); }},
      {"causal-method", T::Choice, kAnalyze, "E~c singular values: auto, dense or lanczos", "auto", false,
       {"auto", "dense", "lanczos"}, kNoMinimum, nullptr, nullptr, nullptr,
       [](Request& rq, const std::string& v) {
         rq.options.causal.method = v == "dense"     ? CausalMethod::Dense
                                    : v == "lanczos" ? CausalMethod::Lanczos
                                                     : CausalMethod::Auto;
       }},
      {"causal-dense-max", T::Int, kAnalyze,
       "auto: dense SVD of E~c up to this many tokens, Lanczos beyond",
       std::to_string(causal.dense_max), false, {}, 0, nullptr, nullptr, nullptr,
       ATTNSPEC_INT(options.causal.dense_max)},
      {"causal-max-values", T::Int, kAnalyze,
       "Lanczos: at most this many singular values of E~c",
       std::to_string(causal.max_values), false, {}, 1, nullptr, nullptr, nullptr,
       ATTNSPEC_INT(options.causal.max_values)},
      {"data-side", T::Flag, kAnalyze, "spectra of the generated component: Xc per layer (layers.csv), Q, Qc, Kc per head",
       "false", false, {}, kNoMinimum, nullptr, nullptr, nullptr, ATTNSPEC_FLAG(options.data_side)},
      {"invariants", T::Flag, kAnalyze,
       "row zero-sum residual, numerical rank, column-energy delocalisation and key coherence per head", "false",
       false, {}, kNoMinimum, nullptr, nullptr, nullptr, ATTNSPEC_FLAG(options.invariants)},
      // The compression plan.
      {"tolerance", T::Number, kPlan, "mean total-variation tolerance EPS (repeatable)",
       "0.01 0.05", false, {}, kNoMinimum, "tolerances", nullptr, nullptr,
       [](Request& rq, const std::string& v) { rq.tolerances.push_back(std::stod(v)); }, true},
      {"ranks", T::Choice, kPlan, "ranks to evaluate: all (every k) or geometric (0..8, then x1.25)", "all",
       false, {"all", "geometric"}, kNoMinimum, nullptr, nullptr, nullptr,
       [](Request& rq, const std::string& v) { rq.geometric = v == "geometric"; }},
      // Compression that deploys: maps fitted on calibration text, judged on held-out text.
      {"calibrate", T::Path, kCompress, "UTF-8 text the query/key maps are fitted on (repeatable)", "", true, {},
       kNoMinimum, nullptr, nullptr, nullptr, [](Request& rq, const std::string& v) { rq.calibrate.push_back(v); },
       true},
      {"evaluate", T::Path, kCompress,
       "held-out UTF-8 text the compressed model is judged on (repeatable; no window may overlap the calibration text)",
       "", true, {}, kNoMinimum, nullptr, nullptr, nullptr,
       [](Request& rq, const std::string& v) { rq.evaluate.push_back(v); }, true},
      {"calibration-windows", T::Int, kCompress, "at most this many calibration windows", "16", false, {}, 1, nullptr,
       nullptr, nullptr, ATTNSPEC_INT(calibration_windows)},
      {"evaluation-windows", T::Int, kCompress, "at most this many evaluation windows", "8", false, {}, 1, nullptr,
       nullptr, nullptr, ATTNSPEC_INT(evaluation_windows)},
      {"budget", T::Number, kCompress, "share of the key dimensions kept model-wide, in (0, 1] (repeatable)",
       "0.25 0.5 0.75", false, {}, kNoMinimum, "budgets", nullptr, nullptr,
       [](Request& rq, const std::string& v) { rq.budgets.push_back(std::stod(v)); }, true},
      {"method", T::Choice, kCompress,
       "subspace: pca (top keys' directions), field (best for the pooled E~), weights (data-free, W_Q^T W_K) "
       "(repeatable)",
       "pca field weights", false, {"pca", "field", "weights"}, kNoMinimum, "methods", nullptr, nullptr,
       [](Request& rq, const std::string& v) { rq.methods.push_back(v); }, true},
      {"policy", T::Choice, kCompress,
       "ranks per head: uniform (the budget's share of d_h everywhere) or field (shared by field energy) (repeatable)",
       "uniform field", false, {"uniform", "field"}, kNoMinimum, "policies", nullptr, nullptr,
       [](Request& rq, const std::string& v) { rq.policies.push_back(v); }, true},
      {"export-method", T::Choice, kCompress, "the maps projections.safetensors holds: their method", "field", false,
       {"pca", "field", "weights"}, kNoMinimum, nullptr, nullptr, nullptr,
       [](Request& rq, const std::string& v) { rq.export_method = v; }},
      {"export-policy", T::Choice, kCompress, "... their rank policy", "field", false, {"uniform", "field"}, kNoMinimum,
       nullptr, nullptr, nullptr, [](Request& rq, const std::string& v) { rq.export_policy = v; }},
      {"export-budget", T::Number, kCompress, "... their budget", "0.5", false, {}, kNoMinimum, nullptr, nullptr,
       nullptr, [](Request& rq, const std::string& v) { rq.export_budget = std::stod(v); }},
  };
  return table;
}

#undef ATTNSPEC_PATH
#undef ATTNSPEC_INT
#undef ATTNSPEC_FLAG

std::vector<const Option*> options_of(Command command) {
  std::vector<const Option*> out;
  for (const auto& o : options())
    if (o.commands & command) out.push_back(&o);
  return out;
}

void set_option(const Option& o, Request& rq, const std::string& value) {
  switch (o.type) {
    case OptionType::Path: break;
    case OptionType::Int: integer(o.name, value, o.min); break;
    case OptionType::Number: number(o.name, value); break;
    case OptionType::Flag:
      if (value != "true" && value != "false") bad_value(o.name, value, "true or false");
      break;
    case OptionType::Choice: {
      bool known = false;
      std::string list;
      for (const char* c : o.choices) {
        known = known || value == c;
        list += (list.empty() ? "" : ", ") + std::string(c);
      }
      if (!known) bad_value(o.name, value, "one of " + list);
      break;
    }
  }
  o.apply(rq, value);
}

void set_defaults(Command command, Request& rq, const std::vector<std::string>& given, bool python) {
  for (const Option* o : options_of(command)) {
    if (std::find(given.begin(), given.end(), o->name) != given.end()) continue;
    const std::string fallback = python && o->python_fallback ? o->python_fallback : o->fallback;
    if (fallback.empty()) continue;
    if (!o->repeatable) {
      set_option(*o, rq, fallback);
      continue;
    }
    for (size_t at = 0, end; at < fallback.size(); at = end + 1) {  // space-separated numbers
      end = std::min(fallback.find(' ', at), fallback.size());
      set_option(*o, rq, fallback.substr(at, end - at));
    }
  }
}

void finish_request(Command command, Request& rq) {
  if (command == kCompress) {
    if (rq.calibrate.empty() || rq.evaluate.empty())
      throw InputError("compress needs --calibrate FILE and --evaluate FILE (disjoint texts)");
    rq.model = resolve_model(rq.model.string());
    return;
  }
  if (command == kTokenize ? rq.text.empty() : rq.text.empty() && rq.token_ids.empty())
    throw InputError(std::string(command_name(command)) + " needs --text FILE" +
                     (command == kTokenize ? "" : " or --token-ids FILE"));
  if (!rq.text.empty() && !rq.token_ids.empty()) throw InputError("--text and --token-ids exclude each other");
  rq.model = resolve_model(rq.model.string());
}

}  // namespace attnspec
