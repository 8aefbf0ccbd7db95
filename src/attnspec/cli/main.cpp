// The attnspec command line. Bad input (InputError) is one line on stderr and exit status 2;
// anything else escaping the core is an internal fault (status 1).
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <map>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "attnspec/common/error.h"
#include "attnspec/io/gguf.h"
#include "attnspec/model/model.h"
#include "attnspec/run/compress.h"
#include "attnspec/run/options.h"
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

// One command's options, declared to CLI11 from the option table (run/options.h): the text each
// was given, turned into a Request after parsing.
struct CommandLine {
  attnspec::Command command;
  CLI::App* app = nullptr;
  std::deque<std::pair<const attnspec::Option*, std::vector<std::string>>> given;  // stable addresses for CLI11
  std::deque<bool> flags;

  CommandLine(CLI::App& parent, attnspec::Command cmd, const std::string& help) : command(cmd) {
    app = parent.add_subcommand(attnspec::command_name(cmd), help);
    std::map<std::string, CLI::Option*> declared;
    for (const attnspec::Option* o : attnspec::options_of(cmd)) {
      auto& [option, values] = given.emplace_back(o, std::vector<std::string>{});
      CLI::Option* opt = nullptr;
      if (o->type == attnspec::OptionType::Flag) {
        opt = app->add_flag(o->cli_flag(), flags.emplace_back(false), o->help);
      } else {
        static const char* kTypeNames[] = {"PATH", "INT", "", "TEXT", "NUMBER"};
        opt = app->add_option(o->cli_flag(), values, o->help)->type_name(kTypeNames[int(o->type)]);
        if (!o->repeatable) opt->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
        else opt->allow_extra_args(false);  // repeated: --tolerance 0.01 --tolerance 0.05
        if (!o->fallback.empty()) opt->default_str(o->fallback);
      }
      if (o->required) opt->required();
      if (!o->choices.empty()) opt->check(CLI::IsMember(std::vector<std::string>(o->choices.begin(), o->choices.end())));
      if (o->min == 0) opt->check(CLI::NonNegativeNumber);
      if (o->min == 1) opt->check(CLI::PositiveNumber);
      if (o->excludes) opt->excludes(declared.at(o->excludes));
      declared[o->name] = opt;
    }
  }

  // The value an option was given on the command line ("" when it was not).
  std::string given_value(const std::string& name) const {
    for (const auto& [o, values] : given)
      if (o->name == name && !values.empty()) return values.back();
    return "";
  }

  attnspec::Request request() {
    attnspec::Request rq;
    std::vector<std::string> names;
    size_t flag = 0;
    for (auto& [o, values] : given) {
      const bool is_flag = o->type == attnspec::OptionType::Flag;
      if (is_flag ? !flags[flag] : values.empty()) {
        flag += is_flag;
        continue;
      }
      names.push_back(o->name);
      if (is_flag) values = {"true"}, ++flag;
      for (const auto& v : values) attnspec::set_option(*o, rq, v);
    }
    attnspec::set_defaults(command, rq, names, /*python=*/false);
    attnspec::finish_request(command, rq);
    return rq;
  }
};

int run(int argc, char** argv) {
  CLI::App app{"attnspec: the spectral structure of attention in transformer language models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("attnspec ") + ATTNSPEC_VERSION);

  CommandLine analyze(app, attnspec::kAnalyze, "Per-head spectra of the energy field E~ and of W_Q^T W_K");
  CommandLine plan(app, attnspec::kPlan,
                   "Per-head rank-k compression plan: attention TV/KL vs rank, smallest k per tolerance");
  CommandLine tokenize(app, attnspec::kTokenize, "Print the token ids of a text (no special tokens) as a JSON array");
  CommandLine compress(app, attnspec::kCompress,
                       "Fixed rank-k query/key maps fitted on calibration text, judged by the model's next-token "
                       "distribution on held-out text (perplexity, KL, top-1), per method, rank policy and budget");

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
  for (const auto& [name, sub] : python_commands)
    if (sub->parsed()) return run_python_module(name, sub->remaining());

  if (analyze.app->parsed() && analyze.given_value("engine") == "torch") {
    // The torch engine runs the model in PyTorch (python/attnspec/torch.py): the same arguments,
    // already checked against the option table by the parse above, go to its main().
    int at = 1;
    while (at < argc && std::string(argv[at]) != "analyze") ++at;
    return run_python_module("torch", std::vector<std::string>(argv + std::min(at + 1, argc), argv + argc));
  }
  if (analyze.app->parsed()) {
    const attnspec::Request rq = analyze.request();
    attnspec::run_analyze(rq);
    if (!rq.quiet) std::fprintf(stderr, "attnspec: wrote %s\n", rq.out.c_str());
  } else if (plan.app->parsed()) {
    const attnspec::Request rq = plan.request();
    attnspec::run_plan(rq);
    if (!rq.quiet) std::fprintf(stderr, "attnspec: wrote %s\n", rq.out.c_str());
  } else if (compress.app->parsed()) {
    const attnspec::Request rq = compress.request();
    attnspec::run_compress(rq);
    if (!rq.quiet) std::fprintf(stderr, "attnspec: wrote %s\n", rq.out.c_str());
  } else if (tokenize.app->parsed()) {
    const attnspec::Request rq = tokenize.request();
    const auto ids = attnspec::tokenize_file(rq.model, rq.text, rq.strip_gutenberg);
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
    std::printf("\nother architectures: attnspec analyze --engine torch runs any decoder that transformers loads\n"
                "(AutoModelForCausalLM: a folder or hub id) in PyTorch on --device cpu|cuda|mps|auto in --dtype, and\n"
                "measures the queries and keys its attention consumes; from Python, attnspec.torch.analyze(model, ids)\n");
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
