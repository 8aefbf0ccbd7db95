#include "attnspec/run/inputs.h"

#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>

#include "attnspec/common/error.h"
#include "attnspec/tokenize/text.h"
#include "attnspec/tokenize/tokenizer.h"

namespace attnspec {

std::vector<int32_t> read_token_ids(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw input_error(path.string(), "cannot open token-id file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string s = buffer.str();
  // One grammar covers both forms: an optional [ ... ] around integers separated by white space
  // or commas.
  size_t i = 0, end = s.size();
  auto skip_space = [&] { while (i < end && std::isspace(static_cast<unsigned char>(s[i]))) ++i; };
  skip_space();
  bool bracketed = false;
  if (i < end && s[i] == '[') {
    bracketed = true;
    ++i;
    size_t close = s.find_last_not_of(" \t\r\n");
    if (close == std::string::npos || s[close] != ']') throw input_error(path.string(), "JSON array of token ids is not closed with ']'");
    end = close;
  }
  std::vector<int32_t> ids;
  while (true) {
    skip_space();
    if (i >= end) break;
    if (!ids.empty()) {
      if (s[i] == ',') { ++i; skip_space(); }
      else if (bracketed) throw input_error(path.string(), "expected ',' at byte " + std::to_string(i));
    }
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(s.data() + i, s.data() + end, v);
    if (ec != std::errc() || ptr == s.data() + i) {
      const size_t stop = std::min(end, s.find_first_of(" \t\r\n,", i));
      throw input_error(path.string(), "'" + s.substr(i, std::min<size_t>(stop - i, 32)) + "' at byte " + std::to_string(i) +
                                           " is not an integer token id");
    }
    if (v < 0 || v > INT32_MAX) throw input_error(path.string(), "token id " + std::to_string(v) + " at byte " + std::to_string(i) + " is out of range");
    ids.push_back(static_cast<int32_t>(v));
    i = ptr - s.data();
    if (i < end && !std::isspace(static_cast<unsigned char>(s[i])) && s[i] != ',')
      throw input_error(path.string(), "unexpected character '" + std::string(1, s[i]) + "' at byte " + std::to_string(i));
  }
  if (ids.empty()) throw input_error(path.string(), "holds no token ids");
  return ids;
}

Windows cut_windows(std::span<const int32_t> stream, int ctx, const std::vector<int32_t>& prefix,
                    const std::vector<int32_t>& suffix, int max_windows, const std::string& source) {
  const int specials = static_cast<int>(prefix.size() + suffix.size());
  if (ctx <= specials)
    throw InputError("--ctx " + std::to_string(ctx) + " leaves no room for text after the tokenizer's " +
                     std::to_string(specials) + " special token(s)");
  const size_t body = size_t(ctx - specials);
  Windows w;
  w.stream_tokens = stream.size();
  size_t available = stream.size() / body;
  if (available == 0)
    throw input_error(source, "holds " + std::to_string(stream.size()) + " tokens, fewer than one window of " +
                                  std::to_string(body) + " (--ctx " + std::to_string(ctx) + ")");
  if (max_windows > 0) available = std::min(available, size_t(max_windows));
  for (size_t k = 0; k < available; ++k) {
    std::vector<int32_t> win(prefix);
    win.insert(win.end(), stream.begin() + k * body, stream.begin() + (k + 1) * body);
    win.insert(win.end(), suffix.begin(), suffix.end());
    w.windows.push_back(std::move(win));
  }
  w.dropped_tokens = stream.size() - available * body;
  return w;
}

PreparedInput read_input(const Request& src) {
  if (src.ctx <= 0) throw InputError("--ctx must be a positive number of tokens");
  if (src.text.empty() == src.token_ids.empty()) throw InputError("give exactly one of --text and --token-ids");
  PreparedInput out;
  const std::string source = !src.text.empty() ? src.text.string() : src.token_ids.string();
  if (!src.text.empty()) {
    const auto tok_dir = src.tokenizer.empty() ? src.model : src.tokenizer;
    if (!Tokenizer::present(tok_dir))
      throw input_error(tok_dir.string(), "holds no tokenizer files (tokenizer.json, vocab.json + merges.txt or "
                                          "tokenizer.model); pass --tokenizer DIR or --token-ids FILE");
    auto tokenizer = Tokenizer::load(tok_dir);
    TextOptions options;
    options.strip_gutenberg = src.strip_gutenberg;
    const std::string text = read_text_file(src.text, options);
    // `attnspec tokenize` prints [] for an empty text; a run needs at least one window.
    if (text.empty())
      throw input_error(src.text.string(), std::string(std::filesystem::file_size(src.text) == 0
                                                           ? "the text file is empty"
                                                           : "the text is empty after Project Gutenberg stripping") +
                                               ": no window to analyze");
    const auto ids = tokenizer->encode(text);
    out.windows = cut_windows(ids, src.ctx, tokenizer->prefix_special(), tokenizer->suffix_special(), src.max_windows, source);
    out.description = {{"text", src.text.string()},
                       {"tokenizer", tokenizer->describe()},
                       {"tokenizer_dir", tok_dir.string()},
                       {"strip_gutenberg", src.strip_gutenberg},
                       {"text_bytes", text.size()},
                       {"prefix_special", tokenizer->prefix_special()},
                       {"suffix_special", tokenizer->suffix_special()}};
  } else {
    out.windows = cut_windows(read_token_ids(src.token_ids), src.ctx, {}, {}, src.max_windows, source);
    out.description = {{"token_ids", src.token_ids.string()}};
  }
  out.description["stream_tokens"] = out.windows.stream_tokens;
  out.description["dropped_tokens"] = out.windows.dropped_tokens;
  return out;
}

PreparedInput prepare_input(const Request& src, const ModelConfig& c) {
  if (src.ctx <= 0) throw InputError("--ctx must be a positive number of tokens");
  if (src.text.empty() == src.token_ids.empty()) throw InputError("give exactly one of --text and --token-ids");
  if (src.ctx > c.max_positions && (c.learned_positions || !src.allow_long_context))
    throw input_error(std::filesystem::is_directory(src.model) ? (src.model / "config.json").string() : src.model.string(),
                      "--ctx " + std::to_string(src.ctx) + " exceeds max_position_embeddings " + std::to_string(c.max_positions) +
                          (c.learned_positions ? " (learned positions cannot be extended)" : "; pass --allow-long-context to run anyway"));
  PreparedInput out = read_input(src);
  const std::string source = !src.text.empty() ? src.text.string() : src.token_ids.string();
  for (size_t w = 0; w < out.windows.windows.size(); ++w)
    for (size_t i = 0; i < out.windows.windows[w].size(); ++i)
      if (out.windows.windows[w][i] >= c.vocab_size)
        throw input_error(source, "token id " + std::to_string(out.windows.windows[w][i]) + " (window " + std::to_string(w) +
                                      ", position " + std::to_string(i) + ") is outside the model's vocabulary of " +
                                      std::to_string(c.vocab_size));
  return out;
}

}  // namespace attnspec
