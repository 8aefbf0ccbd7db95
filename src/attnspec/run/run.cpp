#include "attnspec/run/run.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "attnspec/common/error.h"
#include "attnspec/model/forward.h"
#include "attnspec/model/model.h"
#include "attnspec/run/analysis.h"
#include "attnspec/run/inputs.h"
#include "attnspec/run/outputs.h"
#include "attnspec/run/profile.h"
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

// FNV-1a: a stable fingerprint of inputs for --resume (not a security hash).
uint64_t fnv1a(const void* data, size_t n, uint64_t h = 1469598103934665603ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

std::string hex(uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string file_fingerprint(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  const std::string s((std::istreambuf_iterator<char>(in)), {});
  return hex(fnv1a(s.data(), s.size()));
}

// SIGINT stops a run at the next window boundary; the finished windows stay for --resume.
volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_sigint(int) { g_interrupted = 1; }

class SigintGuard {
 public:
  SigintGuard() { previous_ = std::signal(SIGINT, on_sigint); g_interrupted = 0; }
  ~SigintGuard() { std::signal(SIGINT, previous_ == SIG_ERR ? SIG_DFL : previous_); }

 private:
  void (*previous_)(int);
};

// A test point: with ATTNSPEC_TEST_STOP_AFTER_WINDOW=N in the environment, the run stops its own
// process (SIGSTOP) once N windows are computed and saved, so a test can kill or interrupt it at a
// known point instead of racing it. 0 (or unset) never stops.
int stop_after_window() {
  const char* v = std::getenv("ATTNSPEC_TEST_STOP_AFTER_WINDOW");
  return v ? std::max(0, std::atoi(v)) : 0;
}

// Bytes a run needs beyond the memory-mapped checkpoint (whose pages the OS can always drop):
// one layer's weights widened to float32 (F16/BF16 checkpoints), the activations of a window,
// and each thread's block of attention scores.
size_t estimate_run_bytes(const Model& m, int n, int threads) {
  const ModelConfig& c = m.config;
  size_t widened = 0;
  if (!m.layers.empty()) {
    const LayerSpec& L = m.layers[0];
    std::vector<std::string> seen;  // fused weights (qkv_proj, gate_up_proj) count once
    for (const auto* name : {&L.q.weight, &L.k.weight, &L.v.weight, &L.o.weight, &L.up.weight, &L.gate.weight,
                             &L.down.weight})
      if (!name->empty() && std::find(seen.begin(), seen.end(), *name) == seen.end()) {
        seen.push_back(*name);
        const TensorView& t = m.store->at(*name);
        if (!t.direct_float32()) widened += size_t(t.numel()) * 4;
      }
  }
  const size_t qd = size_t(c.n_heads) * c.head_dim, kvd = size_t(c.n_kv_heads) * c.head_dim;
  const size_t activations = size_t(n) * ((c.parallel_residual ? 5 : 4) * size_t(c.d_model) + 2 * qd + 2 * kvd + 2 * size_t(c.d_ff)) * 4;
  const size_t scores = size_t(threads) * 128 * size_t(n) * 4;
  return widened + activations + scores + (64ull << 20);  // + code, spectra, buffers
}

size_t available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  size_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return 0;  // unknown: no guard
}

// The model and the input of a run, read and checked before anything is computed or written.
struct OpenedRun {
  Request request;  // as asked, plus what the model implies (soft-capped: the capped field too)
  std::unique_ptr<Model> model;
  PreparedInput prepared;
  int last_layer = 0;
  int windows() const { return static_cast<int>(prepared.windows.windows.size()); }
};

OpenedRun open_run(const Request& request) {
  OpenedRun r;
  r.request = request;
  const Request& rq = r.request;
  if (rq.engine != "native")
    throw InputError("--engine " + rq.engine + " runs in Python: the attnspec command, attnspec.analyze(..., engine='" +
                     rq.engine + "') or attnspec.torch.analyze hand it over; sweeps, plan and compress use the native engine");
  r.model = load_model(rq.model);
  const ModelConfig& c = r.model->config;
  r.request.options.capped = c.attn_softcap > 0;
  if (rq.layers < 0 || rq.layers > c.n_layers)
    throw input_error((rq.model / "config.json").string(), "cannot analyze " + std::to_string(rq.layers) +
                                                              " layers: the model has " + std::to_string(c.n_layers));
  if (!c.causal && rq.options.causal_field())
    throw input_error((rq.model / "config.json").string(),
                      "--field causal/both: the causal field E~c (keys j <= i) is not what this " + c.family +
                          " encoder attends over: its softmax sees all n keys, so the unmasked E~ of the *_field "
                          "columns already is its attention field; use --field unmasked");
  r.prepared = prepare_input(rq, c);
  r.last_layer = (rq.layers > 0 ? rq.layers : c.n_layers) - 1;
  return r;
}

size_t run_memory_bytes(const Request& rq, const Model& model, int threads) {
  return estimate_run_bytes(model, rq.ctx, threads) + extras_bytes(rq.options, rq.ctx) * size_t(threads);
}

// Refuse up front what cannot fit, rather than be killed by the OS at hour three.
void check_memory(const Request& rq, const Model& model) {
  const size_t need = run_memory_bytes(rq, model, thread_count()), have = available_memory_bytes();
  if (have > 0 && need > have)
    throw InputError("this run needs about " + std::to_string(need >> 20) + " MiB beyond the mapped checkpoint (" +
                     std::to_string(rq.ctx) + "-token windows) but only " + std::to_string(have >> 20) +
                     " MiB is available; use a smaller --ctx or fewer --threads");
}

// summary.json without what depends on the machine or the course of the run (threads, timings,
// resumed windows) and without the aggregates (from heads.csv, at the end).
nlohmann::json summary_json(const Request& rq, const OpenedRun& r, const char* command) {
  const ModelConfig& c = r.model->config;
  nlohmann::json model = model_summary(rq.model, c);
  model.update({{"format", r.model->format},
                {"d_model", c.d_model},
                {"vocab_size", c.vocab_size},
                {"max_positions", c.max_positions},
                {"parameters", c.parameter_count},
                {"dtypes", dtype_census(*r.model->store)},
                {"positions", c.learned_positions ? std::string("learned") : c.rope_description}});
  nlohmann::json summary = {
      {"attnspec_version", ATTNSPEC_VERSION},
      {"command", command},
      {"model", model},
      {"input", r.prepared.description},
      {"ctx", rq.ctx},
      {"windows", r.windows()},
      {"layers_analyzed", r.last_layer + 1},
      {"options", options_json(rq.options)},
      {"conventions", conventions_json()},
  };
  summary["conventions"].update(extras_conventions_json(rq.options));
  if (c.attn_softcap > 0) summary["model"]["attn_softcap"] = c.attn_softcap;
  if (!c.causal)
    summary["conventions"]["attention"] =
        "bidirectional (encoder): every query sees all n keys, no mask, so the unmasked E~ is exactly the field "
        "the model's softmax sees; the causal field E~c does not apply and --field causal/both is refused";
  if (c.post_norm && rq.options.data_side)
    summary["conventions"]["data_side_input"] =
        "post-LN model: the attention block's input X is the residual stream itself (already the output of the "
        "embedding or previous block's LayerNorm); Xc centres it over positions";
  return summary;
}

}  // namespace

std::vector<int32_t> tokenize_file(const std::filesystem::path& tokenizer_dir, const std::filesystem::path& text,
                                   int strip_gutenberg) {
  auto tokenizer = Tokenizer::load(tokenizer_dir);
  TextOptions options;
  options.strip_gutenberg = strip_gutenberg;
  return tokenizer->encode(read_text_file(text, options));
}

nlohmann::json run_analyze(const Request& request) {
  const auto t_start = Clock::now();
  // Everything is read and checked before the output folder is touched.
  const OpenedRun opened = open_run(request);
  const Request& rq = opened.request;
  const Model* model = opened.model.get();
  const ModelConfig& c = model->config;
  const Windows& windows = opened.prepared.windows;
  const nlohmann::json& input = opened.prepared.description;

  set_thread_count(rq.threads);
  const int last_layer = opened.last_layer;
  const int nw = opened.windows();
  check_memory(rq, *model);

  // What a resumed run must share with the one it continues.
  uint64_t stream_hash = fnv1a(nullptr, 0);
  for (const auto& win : windows.windows) stream_hash = fnv1a(win.data(), win.size() * sizeof(int32_t), stream_hash);
  nlohmann::json model_files = nlohmann::json::array();
  for (const auto& f : model->store->files())
    model_files.push_back({{"name", f.filename().string()}, {"bytes", std::filesystem::file_size(f)}});
  nlohmann::json fingerprint = {
      {"attnspec_version", ATTNSPEC_VERSION},
      {"model", std::filesystem::absolute(rq.model).string()},
      {"config", model->format == "safetensors" ? file_fingerprint(rq.model / "config.json")
                                                : hex(fnv1a(model->hf_config.dump().data(), model->hf_config.dump().size()))},
      {"weights", model_files},
      {"input", input},
      {"token_stream", hex(stream_hash)},
      {"ctx", rq.ctx},
      {"windows", nw},
      {"save_spectra", rq.save_spectra},
      {"options", options_json(rq.options)},
  };
  if (rq.layers > 0) fingerprint["layers"] = last_layer + 1;
  RunDirectory out(rq.out, fingerprint, rq.save_spectra, rq.resume);
  out.set_options(rq.options);

  map_layer_weights(*model, last_layer);
  const auto t_weights = Clock::now();
  const double load_seconds = std::chrono::duration<double>(t_weights - t_start).count();
  const WeightSpectra weights = compute_weight_spectra(*model, last_layer);
  const double weight_seconds = std::chrono::duration<double>(Clock::now() - t_weights).count();

  ForwardTimes totals;
  ForwardFlops flops;
  double spectra_seconds = 0;
  const bool tty = ::isatty(STDERR_FILENO);
  const auto t_windows = Clock::now();
  int resumed = 0, computed = 0;
  SigintGuard sigint;
  const int stop_after = stop_after_window();
  for (int w = 0; w < nw; ++w) {
    if (out.window_done(w)) {
      ++resumed;
      continue;
    }
    if (g_interrupted) {
      out.keep_state();
      if (!rq.quiet && tty) std::fprintf(stderr, "\n");
      throw Interrupted("interrupted after " + std::to_string(w) + " of " + std::to_string(nw) +
                        " windows; the finished ones are kept in " + out.state_dir().string() +
                        "; run the same command with --resume to continue");
    }
    // On a terminal the progress line also moves layer by layer (long windows of big models take
    // minutes); in a log it is one line per window.
    auto layer_progress = [&](int layer) {
      if (rq.quiet || !tty) return;
      const double elapsed = std::chrono::duration<double>(Clock::now() - t_windows).count();
      const double done = computed + double(layer + 1) / (last_layer + 1);
      const double eta = done > 0 ? elapsed / done * (nw - resumed - done) : 0;
      std::fprintf(stderr, "\rattnspec: window %d/%d, layer %d/%d  %.1f s elapsed, eta %.1f s   ", w + 1, nw, layer + 1,
                   last_layer + 1, elapsed, eta);
      std::fflush(stderr);
    };
    WindowResult r = analyze_window(*model, windows.windows[w], w, last_layer, rq.options, layer_progress);
    out.add_window(r, weights);
    ++computed;
    if (computed == stop_after) std::raise(SIGSTOP);
    spectra_seconds += r.spectra_seconds;
    for (auto [sum, part] : {std::pair{&totals.widen, r.forward_times.widen}, {&totals.norm, r.forward_times.norm},
                             {&totals.qkv, r.forward_times.qkv}, {&totals.rope, r.forward_times.rope},
                             {&totals.attention, r.forward_times.attention}, {&totals.out_proj, r.forward_times.out_proj},
                             {&totals.mlp, r.forward_times.mlp}, {&totals.widened_bytes, r.forward_times.widened_bytes}})
      *sum += part;
    const ForwardFlops f = forward_flops(c, r.n, last_layer, /*whole_last=*/false);
    for (auto [sum, part] : {std::pair{&flops.qkv, f.qkv}, {&flops.attention, f.attention},
                             {&flops.out_proj, f.out_proj}, {&flops.mlp, f.mlp}})
      *sum += part;
    if (!rq.quiet) {
      const double elapsed = std::chrono::duration<double>(Clock::now() - t_windows).count();
      const double eta = elapsed / computed * double(nw - w - 1);
      std::fprintf(stderr, "%sattnspec: window %d/%d (%d tokens, %d layers x %d heads)  %.1f s elapsed, eta %.1f s%s",
                   tty ? "\r" : "", w + 1, nw, rq.ctx, c.n_layers, c.n_heads, elapsed, eta, tty ? "  " : "\n");
      std::fflush(stderr);
    }
  }
  if (!rq.quiet && tty) std::fprintf(stderr, "\n");

  const double total_seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  nlohmann::json summary = summary_json(rq, opened, "analyze");
  summary["windows_resumed"] = resumed;
  summary["threads"] = thread_count();
  summary["timing_seconds"] = {
      {"total", total_seconds},
      {"load", load_seconds},
      {"weight_spectra", weight_seconds},
      {"field_spectra", spectra_seconds},
      {"forward",
       {{"embed_and_widen", totals.widen},
        {"norm", totals.norm},
        {"qkv", totals.qkv},
        {"rope", totals.rope},
        {"attention", totals.attention},
        {"out_proj", totals.out_proj},
        {"mlp", totals.mlp}}}};
  out.finish(nw, [&](const std::string& heads_csv) {
    summary["aggregates"] = aggregates_from_csv(heads_csv);
    return summary;
  });
  if (rq.profile) {
    RunProfile p{thread_count(), computed, load_seconds, totals, flops, weight_seconds, spectra_seconds,
                 std::chrono::duration<double>(Clock::now() - t_start).count()};
    std::fputs(format_profile(p, sgemm_gflops(1024, p.threads, 3)).c_str(), stderr);
  }
  return summary;
}

RunDescription describe_run(const Request& request) {
  const OpenedRun r = open_run(request);
  const Request& rq = r.request;
  RunDescription d;
  d.windows = r.windows();
  d.layers = r.last_layer + 1;
  d.memory_bytes = run_memory_bytes(rq, *r.model, rq.threads > 0 ? rq.threads : thread_count());
  d.input = r.prepared.description;
  return d;
}

std::vector<WindowRows> analyze_window_block(const Request& request, int first, int last,
                                             const WeightSpectra* shared_weights) {
  const OpenedRun r = open_run(request);
  const Request& rq = r.request;
  const ModelConfig& c = r.model->config;
  const int nw = r.windows();
  if (first < 0 || last > nw || first >= last)
    throw InputError("windows [" + std::to_string(first) + ", " + std::to_string(last) + ") are not inside the run's " +
                     std::to_string(nw) + " windows");
  set_thread_count(rq.threads);
  check_memory(rq, *r.model);
  map_layer_weights(*r.model, r.last_layer);
  WeightSpectra computed;
  if (shared_weights) {
    if (shared_weights->n_heads != c.n_heads || shared_weights->heads.size() != size_t(r.last_layer + 1) * c.n_heads)
      throw InputError("the W_Q^T W_K spectra given do not match " + rq.model.string() + " (" +
                       std::to_string(r.last_layer + 1) + " layers x " + std::to_string(c.n_heads) + " heads)");
  } else {
    computed = compute_weight_spectra(*r.model, r.last_layer);
  }
  const WeightSpectra& weights = shared_weights ? *shared_weights : computed;
  std::vector<WindowRows> out;
  SigintGuard sigint;
  for (int w = first; w < last; ++w) {
    if (g_interrupted) throw Interrupted("interrupted at window " + std::to_string(w));
    const WindowResult res = analyze_window(*r.model, r.prepared.windows.windows[w], w, r.last_layer, rq.options);
    WindowRows rows;
    rows.window = w;
    rows.heads_csv = heads_csv_rows(res, weights);
    if (rq.save_spectra) rows.spectra_jsonl = spectra_jsonl_rows(res, weights);
    if (rq.options.data_side) rows.layers_csv = layers_csv_rows(res);
    if (rq.options.data_side && rq.save_spectra) rows.layers_jsonl = layers_jsonl_rows(res);
    out.push_back(std::move(rows));
  }
  return out;
}

nlohmann::json write_run_from_rows(const Request& request, const std::vector<WindowRows>& rows) {
  const OpenedRun r = open_run(request);
  const Request& rq = r.request;
  const int nw = r.windows();
  if (static_cast<int>(rows.size()) != nw)
    throw InputError(rq.out.string() + ": " + std::to_string(rows.size()) + " windows of rows for a run of " +
                     std::to_string(nw) + " windows");
  RunRows all;
  for (int w = 0; w < nw; ++w) {
    if (rows[w].window != w) throw InputError(rq.out.string() + ": the rows of window " + std::to_string(w) + " are missing");
    all.heads += rows[w].heads_csv;
    all.spectra += rows[w].spectra_jsonl;
    all.layers += rows[w].layers_csv;
    all.layer_spectra += rows[w].layers_jsonl;
  }
  std::error_code ec;
  std::filesystem::create_directories(rq.out, ec);
  if (ec || !std::filesystem::is_directory(rq.out)) throw input_error(rq.out.string(), "cannot create output folder");
  nlohmann::json summary = summary_json(rq, r, "sweep");
  write_run_files(rq.out, rq.options, rq.save_spectra, all, [&](const std::string& heads_csv) {
    summary["aggregates"] = aggregates_from_csv(heads_csv);
    return summary;
  });
  return summary;
}

}  // namespace attnspec
