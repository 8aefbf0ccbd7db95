#include "attnspec/run/run.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "attnspec/common/error.h"
#include "attnspec/model/forward.h"
#include "attnspec/model/model.h"
#include "attnspec/run/analysis.h"
#include "attnspec/run/inputs.h"
#include "attnspec/run/outputs.h"
#include "attnspec/tokenize/text.h"
#include "attnspec/tokenize/tokenizer.h"

namespace attnspec {
namespace {

using Clock = std::chrono::steady_clock;

std::string dtype_census(const TensorStore& store) {
  std::map<std::string, size_t> count;
  for (const auto& [name, t] : store.tensors()) count[dtype_name(t.dtype)]++;
  std::string s;
  for (const auto& [d, n] : count) s += (s.empty() ? "" : ",") + d;
  return s;
}

}  // namespace

std::vector<int32_t> tokenize_file(const std::filesystem::path& tokenizer_dir, const std::filesystem::path& text,
                                   int strip_gutenberg) {
  auto tokenizer = Tokenizer::load(tokenizer_dir);
  TextOptions options;
  options.strip_gutenberg = strip_gutenberg;
  return tokenizer->encode(read_text_file(text, options));
}

nlohmann::json run_analyze(const AnalyzeRequest& rq) {
  const auto t_start = Clock::now();
  if (rq.ctx <= 0) throw InputError("--ctx must be a positive number of tokens");
  if (rq.text.empty() == rq.token_ids.empty()) throw InputError("give exactly one of --text and --token-ids");

  // Everything is read and checked before the output folder is touched.
  auto model = load_model(rq.model);
  const ModelConfig& c = model->config;
  if (rq.ctx > c.max_positions && (c.learned_positions || !rq.allow_long_context))
    throw input_error((rq.model / "config.json").string(),
                      "--ctx " + std::to_string(rq.ctx) + " exceeds max_position_embeddings " + std::to_string(c.max_positions) +
                          (c.learned_positions ? " (learned positions cannot be extended)" : "; pass --allow-long-context to run anyway"));

  nlohmann::json input;
  Windows windows;
  if (!rq.text.empty()) {
    const auto tok_dir = rq.tokenizer.empty() ? rq.model : rq.tokenizer;
    if (!Tokenizer::present(tok_dir))
      throw input_error(tok_dir.string(), "holds no tokenizer files (tokenizer.json, vocab.json + merges.txt or "
                                          "tokenizer.model); pass --tokenizer DIR or --token-ids FILE");
    auto tokenizer = Tokenizer::load(tok_dir);
    TextOptions options;
    options.strip_gutenberg = rq.strip_gutenberg;
    const std::string raw_text = read_text_file(rq.text, options);
    const auto ids = tokenizer->encode(raw_text);
    windows = cut_windows(ids, rq.ctx, tokenizer->prefix_special(), tokenizer->suffix_special(), rq.max_windows,
                          rq.text.string());
    input = {{"text", rq.text.string()},
             {"tokenizer", tokenizer->describe()},
             {"tokenizer_dir", tok_dir.string()},
             {"strip_gutenberg", rq.strip_gutenberg},
             {"text_bytes", raw_text.size()},
             {"prefix_special", tokenizer->prefix_special()},
             {"suffix_special", tokenizer->suffix_special()}};
  } else {
    const auto ids = read_token_ids(rq.token_ids);
    windows = cut_windows(ids, rq.ctx, {}, {}, rq.max_windows, rq.token_ids.string());
    input = {{"token_ids", rq.token_ids.string()}};
  }
  for (size_t w = 0; w < windows.windows.size(); ++w)
    for (size_t i = 0; i < windows.windows[w].size(); ++i)
      if (windows.windows[w][i] >= c.vocab_size)
        throw input_error(!rq.text.empty() ? rq.text.string() : rq.token_ids.string(),
                          "token id " + std::to_string(windows.windows[w][i]) + " (window " + std::to_string(w) +
                              ", position " + std::to_string(i) + ") is outside the model's vocabulary of " +
                              std::to_string(c.vocab_size));
  input["stream_tokens"] = windows.stream_tokens;
  input["dropped_tokens"] = windows.dropped_tokens;

  set_thread_count(rq.threads);
  const int last_layer = c.n_layers - 1;
  OutputWriter writer(rq.out, rq.save_spectra);

  const auto t_weights = Clock::now();
  const WeightSpectra weights = compute_weight_spectra(*model, last_layer);
  double weight_seconds = std::chrono::duration<double>(Clock::now() - t_weights).count();

  Aggregates aggregates;
  ForwardTimes totals;
  double spectra_seconds = 0;
  const bool tty = ::isatty(STDERR_FILENO);
  const auto t_windows = Clock::now();
  const size_t nw = windows.windows.size();
  for (size_t w = 0; w < nw; ++w) {
    WindowResult r = analyze_window(*model, windows.windows[w], static_cast<int>(w), last_layer);
    writer.add_window(r, weights);
    aggregates.add(r, weights);
    spectra_seconds += r.spectra_seconds;
    for (auto [sum, part] : {std::pair{&totals.widen, r.forward_times.widen}, {&totals.norm, r.forward_times.norm},
                             {&totals.qkv, r.forward_times.qkv}, {&totals.rope, r.forward_times.rope},
                             {&totals.attention, r.forward_times.attention}, {&totals.out_proj, r.forward_times.out_proj},
                             {&totals.mlp, r.forward_times.mlp}})
      *sum += part;
    if (!rq.quiet) {
      const double elapsed = std::chrono::duration<double>(Clock::now() - t_windows).count();
      const double eta = elapsed / double(w + 1) * double(nw - w - 1);
      std::fprintf(stderr, "%sattnspec: window %zu/%zu (%d tokens, %d layers x %d heads)  %.1f s elapsed, eta %.1f s%s",
                   tty ? "\r" : "", w + 1, nw, rq.ctx, c.n_layers, c.n_heads, elapsed, eta, tty ? "  " : "\n");
      std::fflush(stderr);
    }
  }
  if (!rq.quiet && tty) std::fprintf(stderr, "\n");

  const double total_seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  nlohmann::json summary = {
      {"attnspec_version", ATTNSPEC_VERSION},
      {"command", "analyze"},
      {"model",
       {{"path", rq.model.string()},
        {"family", c.family},
        {"layers", c.n_layers},
        {"d_model", c.d_model},
        {"heads", c.n_heads},
        {"kv_heads", c.n_kv_heads},
        {"head_dim", c.head_dim},
        {"vocab_size", c.vocab_size},
        {"max_positions", c.max_positions},
        {"parameters", c.parameter_count},
        {"dtypes", dtype_census(*model->store)},
        {"positions", c.learned_positions ? std::string("learned") : c.rope_description},
        {"softmax_scale", c.softmax_scale},
        {"sliding_window", c.sliding_window}}},
      {"input", input},
      {"ctx", rq.ctx},
      {"windows", nw},
      {"layers_analyzed", last_layer + 1},
      {"threads", thread_count()},
      {"conventions", conventions_json()},
      {"aggregates", aggregates.to_json()},
      {"timing_seconds",
       {{"total", total_seconds},
        {"weight_spectra", weight_seconds},
        {"field_spectra", spectra_seconds},
        {"forward",
         {{"embed_and_widen", totals.widen},
          {"norm", totals.norm},
          {"qkv", totals.qkv},
          {"rope", totals.rope},
          {"attention", totals.attention},
          {"out_proj", totals.out_proj},
          {"mlp", totals.mlp}}}}},
  };
  writer.commit(summary);
  return summary;
}

}  // namespace attnspec
