// The attnspec command line. Bad input (InputError) is one line on stderr and exit status 2;
// anything else escaping the core is an internal fault (status 1).
#include <CLI/CLI.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "attnspec/common/error.h"
#include "attnspec/io/gguf.h"
#include "attnspec/io/hub.h"
#include "attnspec/model/model.h"
#include "attnspec/run/plan.h"
#include "attnspec/run/run.h"

namespace {

// `reproduce`, `report`, `sweep` and `demo` are written in Python (python/attnspec/reproduce.py, report.py,
// sweep.py, demo.py). They run in the Python that installed attnspec: $ATTNSPEC_PYTHON if set, else
// the python3 beside this executable (pip installs both into the same bin/), else the interpreter that built the package
// (known to CMake), else python3 on PATH. A missing interpreter or package is bad input: one line, 2.
std::vector<std::string> python_candidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("ATTNSPEC_PYTHON"); env && *env) out.emplace_back(env);
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec)
    for (const char* name : {"python3", "python"})
      if (std::filesystem::exists(self.parent_path() / name, ec)) out.push_back((self.parent_path() / name).string());
#ifdef ATTNSPEC_PYTHON_EXECUTABLE
  if (std::filesystem::exists(ATTNSPEC_PYTHON_EXECUTABLE, ec)) out.emplace_back(ATTNSPEC_PYTHON_EXECUTABLE);
#endif
  out.emplace_back("python3");  // searched on PATH
  return out;
}

int run_python_module(const std::string& command, const std::vector<std::string>& args) {
  const std::string module = "attnspec." + command;
  // `python -m module` would exit 1 with a traceback-like line when the package is missing.
  const std::string bootstrap =
      "import sys, importlib\n"
      "try:\n"
      "    m = importlib.import_module('" + module + "')\n"
      "except ModuleNotFoundError as e:\n"
      "    if e.name not in ('attnspec', '" + module + "', 'attnspec._core'): raise\n"
      "    sys.stderr.write('attnspec: error: " + command + " needs the attnspec Python package, which ' + sys.executable"
      " + ' cannot import (pip install attnspec, or set ATTNSPEC_PYTHON)\\n')\n"
      "    sys.exit(2)\n"
      "sys.exit(m.main(sys.argv[1:]))\n";
  std::fflush(stdout);
  std::fflush(stderr);
  for (const auto& python : python_candidates()) {
    std::vector<char*> argv = {const_cast<char*>(python.c_str()), const_cast<char*>("-c"),
                               const_cast<char*>(bootstrap.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    if (python.find('/') == std::string::npos) ::execvp(python.c_str(), argv.data());
    else ::execv(python.c_str(), argv.data());
  }
  std::fprintf(stderr, "attnspec: error: %s needs Python 3 with the attnspec package, and no python3 was found "
                       "(install Python 3, or set ATTNSPEC_PYTHON)\n", command.c_str());
  return 2;
}

// --model takes a folder or a Hugging Face hub id. An id is looked up in the local hub cache; when
// it is not there and the machine may go online (HF_HUB_OFFLINE unset), huggingface_hub downloads
// the files attnspec reads (config, safetensors, tokenizer) in the Python that installed attnspec.
std::filesystem::path model_folder(const std::string& arg) {
  namespace fs = std::filesystem;
  if (fs::exists(arg) || !attnspec::looks_like_hub_id(arg)) return arg;  // a path (errors come later)
  if (auto cached = attnspec::find_in_hub_cache(arg); !cached.empty()) return cached;
  const std::string how = "'" + arg + "' is not a folder and the Hugging Face cache (" + attnspec::hub_cache_dir().string() +
                          ") does not hold it; download it with `huggingface-cli download " + arg +
                          " --include config.json '*.safetensors' '*.json' '*.txt' tokenizer.model` on a machine that is online, "
                          "or pass a checkpoint folder";
  const char* offline = std::getenv("HF_HUB_OFFLINE");
  if (offline && *offline && std::string(offline) != "0") throw attnspec::InputError(how + " (HF_HUB_OFFLINE is set)");
  for (const auto& python : python_candidates()) {
    const std::string cmd = "'" + python + "' -c \"import sys; from huggingface_hub import snapshot_download; "
                            "print(snapshot_download(sys.argv[1], allow_patterns=['*.json', '*.safetensors', '*.txt', "
                            "'tokenizer.model']))\" '" + arg + "' 2>/dev/null";
    if (std::FILE* p = ::popen(cmd.c_str(), "r")) {
      char buf[4096];
      std::string out;
      while (std::fgets(buf, sizeof buf, p)) out += buf;
      const int status = ::pclose(p);
      while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
      if (status == 0 && !out.empty() && fs::exists(fs::path(out) / "config.json")) return out;
      if (status == 0 || WEXITSTATUS(status) != 127) break;  // Python ran: the download failed
    }
  }
  throw attnspec::InputError(how + " (the download failed: offline, or no such repository)");
}

int run(int argc, char** argv) {
  CLI::App app{"attnspec: the spectral structure of attention in transformer language models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("attnspec ") + ATTNSPEC_VERSION);

  attnspec::AnalyzeRequest rq;
  std::string strip = "auto";
  auto* analyze = app.add_subcommand("analyze", "Per-head spectra of the energy field E~ and of W_Q^T W_K");
  std::string analyze_model, plan_model, tokenize_model;
  analyze->add_option("--model", analyze_model, "checkpoint folder (config.json + *.safetensors), .gguf file, llama2.c .bin, or Hugging Face hub id")->required();
  auto* text = analyze->add_option("--text", rq.text, "UTF-8 text, tokenized with the checkpoint's tokenizer");
  auto* ids = analyze->add_option("--token-ids", rq.token_ids, "token ids (JSON array or whitespace/comma separated)");
  text->excludes(ids);
  analyze->add_option("--ctx", rq.ctx, "window length in tokens (consecutive, non-overlapping windows)")->required();
  analyze->add_option("--out", rq.out, "output folder for heads.csv, summary.json, spectra.jsonl")->required();
  analyze->add_option("--max-windows", rq.max_windows, "analyze at most this many windows (default: all)");
  analyze->add_flag("--save-spectra", rq.save_spectra, "also write every singular value to spectra.jsonl");
  analyze->add_option("--threads", rq.threads, "threads for BLAS and the per-head work (default: all cores)");
  analyze->add_option("--tokenizer", rq.tokenizer, "tokenizer folder (or .gguf / llama2.c tok*.bin file), when the checkpoint has none of its own");
  analyze->add_option("--strip-gutenberg", strip, "remove Project Gutenberg header/footer: auto, yes, no")
      ->check(CLI::IsMember({"auto", "yes", "no"}));
  analyze->add_flag("--allow-long-context", rq.allow_long_context, "allow --ctx beyond max_position_embeddings");
  analyze->add_flag("--quiet", rq.quiet, "no progress lines");
  analyze->add_flag("--resume", rq.resume, "continue an interrupted run in --out (same inputs and options)");
  // Beyond the paper (README "Beyond the paper"): extra columns and files only when asked for.
  std::string field_mode = "unmasked", causal_method = "auto";
  analyze->add_option("--field", field_mode,
                      "energy field(s): unmasked (the paper's E~, default), causal or both (add the causal field E~c "
                      "as *_causal columns; the fixed *_field columns stay E~)")
      ->check(CLI::IsMember({"unmasked", "causal", "both"}));
  analyze->add_option("--causal-method", causal_method, "E~c singular values: auto (default), dense or lanczos")
      ->check(CLI::IsMember({"auto", "dense", "lanczos"}));
  analyze->add_option("--causal-dense-max", rq.options.causal.dense_max,
                      "auto: dense SVD of E~c up to this many tokens, Lanczos beyond (default 1024)")
      ->check(CLI::NonNegativeNumber);
  analyze->add_option("--causal-max-values", rq.options.causal.max_values,
                      "Lanczos: at most this many singular values of E~c (default 512)")
      ->check(CLI::PositiveNumber);
  analyze->add_flag("--data-side", rq.options.data_side,
                    "spectra of the generated component: Xc per layer (layers.csv), Q, Qc, Kc per head");
  analyze->add_flag("--invariants", rq.options.invariants,
                    "row zero-sum residual, numerical rank, column-energy delocalisation and key coherence per head");

  attnspec::PlanRequest plan_rq;
  std::string plan_strip = "auto", plan_ranks = "all";
  auto* plan = app.add_subcommand("plan", "Per-head rank-k compression plan: attention TV/KL vs rank, smallest k per tolerance");
  plan->add_option("--model", plan_model, "checkpoint folder or Hugging Face hub id")->required();
  auto* plan_text = plan->add_option("--text", plan_rq.text, "UTF-8 text, tokenized with the checkpoint's tokenizer");
  auto* plan_ids = plan->add_option("--token-ids", plan_rq.token_ids, "token ids (JSON array or whitespace/comma separated)");
  plan_text->excludes(plan_ids);
  plan->add_option("--ctx", plan_rq.ctx, "window length in tokens")->required();
  plan->add_option("--out", plan_rq.out, "output folder for plan.csv, plan_curves.csv, plan.json")->required();
  plan->add_option("--tolerance", plan_rq.tolerances, "mean total-variation tolerance EPS (repeatable)")->required();
  plan->add_option("--ranks", plan_ranks, "ranks to evaluate: all (every k, default) or geometric (0..8, then x1.25)")
      ->check(CLI::IsMember({"all", "geometric"}));
  plan->add_option("--max-windows", plan_rq.max_windows, "at most this many windows (default: all)");
  plan->add_option("--threads", plan_rq.threads, "threads (default: all cores)");
  plan->add_option("--tokenizer", plan_rq.tokenizer, "tokenizer folder, when the checkpoint has none of its own");
  plan->add_option("--strip-gutenberg", plan_strip, "remove Project Gutenberg header/footer: auto, yes, no")
      ->check(CLI::IsMember({"auto", "yes", "no"}));
  plan->add_flag("--allow-long-context", plan_rq.allow_long_context, "allow --ctx beyond max_position_embeddings");
  plan->add_flag("--quiet", plan_rq.quiet, "no progress lines");

  std::filesystem::path tok_model, tok_text;
  std::string tok_strip = "no";
  auto* tokenize = app.add_subcommand("tokenize", "Print the token ids of a text (no special tokens) as a JSON array");
  tokenize->add_option("--model", tokenize_model, "checkpoint or tokenizer folder, or Hugging Face hub id")->required();
  tokenize->add_option("--text", tok_text, "UTF-8 text file")->required();
  tokenize->add_option("--strip-gutenberg", tok_strip, "remove Project Gutenberg header/footer: auto, yes, no (default no)")
      ->check(CLI::IsMember({"auto", "yes", "no"}));

  auto* models = app.add_subcommand("models", "List the supported model families and checkpoint formats");

  // Python subcommands: every argument after the name (--help too) goes to the Python side.
  std::vector<std::pair<std::string, CLI::App*>> python_commands;
  for (const auto& [name, what] :
       {std::pair<std::string, std::string>{"reproduce", "Every model on every text at every --ctx, then the paper table "
                                                         "(see attnspec reproduce --help)"},
        {"report", "An HTML report with figures and the table for run folders (see attnspec report --help)"},
        {"sweep", "Models x texts x context lengths from a manifest, locally or on a Ray cluster, resumable "
                  "(see attnspec sweep --help)"},
        {"demo", "The whole pipeline (analyze, table, report) on the small model and text bundled with attnspec "
                 "(see attnspec demo --help)"}}) {
    auto* sub = app.add_subcommand(name, what);
    sub->prefix_command();
    sub->set_help_flag();
    python_commands.emplace_back(name, sub);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;  // usage errors are bad input too
  }
  auto strip_mode = [](const std::string& s) { return s == "auto" ? -1 : s == "yes" ? 1 : 0; };

  for (const auto& [name, sub] : python_commands)
    if (sub->parsed()) return run_python_module(name, sub->remaining());

  if (analyze->parsed()) {
    if (rq.text.empty() && rq.token_ids.empty()) throw attnspec::InputError("analyze needs --text FILE or --token-ids FILE");
    rq.model = model_folder(analyze_model);
    rq.strip_gutenberg = strip_mode(strip);
    rq.options.field = attnspec::parse_field_mode(field_mode);
    rq.options.causal.method = causal_method == "dense"     ? attnspec::CausalMethod::Dense
                               : causal_method == "lanczos" ? attnspec::CausalMethod::Lanczos
                                                            : attnspec::CausalMethod::Auto;
    attnspec::run_analyze(rq);
    if (!rq.quiet) std::fprintf(stderr, "attnspec: wrote %s\n", rq.out.c_str());
  } else if (plan->parsed()) {
    if (plan_rq.text.empty() && plan_rq.token_ids.empty()) throw attnspec::InputError("plan needs --text FILE or --token-ids FILE");
    plan_rq.model = model_folder(plan_model);
    plan_rq.strip_gutenberg = strip_mode(plan_strip);
    plan_rq.geometric = plan_ranks == "geometric";
    attnspec::run_plan(plan_rq);
    if (!plan_rq.quiet) std::fprintf(stderr, "attnspec: wrote %s\n", plan_rq.out.c_str());
  } else if (tokenize->parsed()) {
    tok_model = model_folder(tokenize_model);
    const auto ids = attnspec::tokenize_file(tok_model, tok_text, strip_mode(tok_strip));
    std::string out = "[";
    for (size_t i = 0; i < ids.size(); ++i) out += (i ? ", " : "") + std::to_string(ids[i]);
    out += "]\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
  } else if (models->parsed()) {
    // One family per line: its model_type, then what attnspec reads for it.
    for (const auto& f : attnspec::supported_families()) {
      const std::string notes = attnspec::family_notes(f);
      std::printf("%-11s %s\n", f.c_str(), notes.c_str());
    }
    std::printf("\ncheckpoint formats (--model):\n"
                "  safetensors  a Hugging Face folder: config.json + *.safetensors (F32, F16, BF16)\n"
                "  gguf         one .gguf file, architectures %s (llama with a sliding window: Mistral);\n"
                "               every GGML type gguf-py dequantizes (F32 ... Q4_K ... IQ2_XXS ... MXFP4), one layer\n"
                "               at a time; its tokenizer comes from the metadata\n"
                "  llama2.c     one llama2.c .bin checkpoint; tokenizer: the tok*.bin beside it or --tokenizer FILE\n",
                attnspec::gguf_architectures().c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const attnspec::InputError& e) {
    std::fprintf(stderr, "attnspec: error: %s\n", e.what());
    return 2;
  } catch (const attnspec::Interrupted& e) {
    std::fprintf(stderr, "attnspec: %s\n", e.what());
    return 130;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "attnspec: internal error: %s\n", e.what());
    return 1;
  }
}
