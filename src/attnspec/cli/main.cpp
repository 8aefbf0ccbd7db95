// The attnspec command line. Bad input (InputError) is one line on stderr and exit status 2;
// anything else escaping the core is an internal fault (status 1).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "attnspec/common/error.h"
#include "attnspec/model/model.h"
#include "attnspec/run/run.h"

namespace {

int run(int argc, char** argv) {
  CLI::App app{"attnspec: the spectral structure of attention in transformer language models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("attnspec ") + ATTNSPEC_VERSION);

  attnspec::AnalyzeRequest rq;
  std::string strip = "auto";
  auto* analyze = app.add_subcommand("analyze", "Per-head spectra of the energy field E~ and of W_Q^T W_K");
  analyze->add_option("--model", rq.model, "Hugging Face checkpoint folder (config.json + *.safetensors)")->required();
  auto* text = analyze->add_option("--text", rq.text, "UTF-8 text, tokenized with the checkpoint's tokenizer");
  auto* ids = analyze->add_option("--token-ids", rq.token_ids, "token ids (JSON array or whitespace/comma separated)");
  text->excludes(ids);
  analyze->add_option("--ctx", rq.ctx, "window length in tokens (consecutive, non-overlapping windows)")->required();
  analyze->add_option("--out", rq.out, "output folder for heads.csv, summary.json, spectra.jsonl")->required();
  analyze->add_option("--max-windows", rq.max_windows, "analyze at most this many windows (default: all)");
  analyze->add_flag("--save-spectra", rq.save_spectra, "also write every singular value to spectra.jsonl");
  analyze->add_option("--threads", rq.threads, "threads for BLAS and the per-head work (default: all cores)");
  analyze->add_option("--tokenizer", rq.tokenizer, "tokenizer folder, when the checkpoint has none of its own");
  analyze->add_option("--strip-gutenberg", strip, "remove Project Gutenberg header/footer: auto, yes, no")
      ->check(CLI::IsMember({"auto", "yes", "no"}));
  analyze->add_flag("--allow-long-context", rq.allow_long_context, "allow --ctx beyond max_position_embeddings");
  analyze->add_flag("--quiet", rq.quiet, "no progress lines");
  analyze->add_flag("--resume", rq.resume, "continue an interrupted run in --out (same inputs and options)");

  std::filesystem::path tok_model, tok_text;
  std::string tok_strip = "no";
  auto* tokenize = app.add_subcommand("tokenize", "Print the token ids of a text (no special tokens) as a JSON array");
  tokenize->add_option("--model", tok_model, "checkpoint or tokenizer folder")->required();
  tokenize->add_option("--text", tok_text, "UTF-8 text file")->required();
  tokenize->add_option("--strip-gutenberg", tok_strip, "remove Project Gutenberg header/footer: auto, yes, no (default no)")
      ->check(CLI::IsMember({"auto", "yes", "no"}));

  auto* models = app.add_subcommand("models", "List the supported model families");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;  // usage errors are bad input too
  }
  auto strip_mode = [](const std::string& s) { return s == "auto" ? -1 : s == "yes" ? 1 : 0; };

  if (analyze->parsed()) {
    if (rq.text.empty() && rq.token_ids.empty()) throw attnspec::InputError("analyze needs --text FILE or --token-ids FILE");
    rq.strip_gutenberg = strip_mode(strip);
    attnspec::run_analyze(rq);
    if (!rq.quiet) std::fprintf(stderr, "attnspec: wrote %s\n", rq.out.c_str());
  } else if (tokenize->parsed()) {
    const auto ids = attnspec::tokenize_file(tok_model, tok_text, strip_mode(tok_strip));
    std::string out = "[";
    for (size_t i = 0; i < ids.size(); ++i) out += (i ? ", " : "") + std::to_string(ids[i]);
    out += "]\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
  } else if (models->parsed()) {
    for (const auto& f : attnspec::supported_families()) std::printf("%s\n", f.c_str());
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
