#include "attnspec/tokenize/file_tokenizers.h"

#include <cstring>

#include "attnspec/common/error.h"
#include "attnspec/io/checkpoint_file.h"
#include "attnspec/io/mapped_file.h"
#include "attnspec/tokenize/added_tokens.h"
#include "attnspec/tokenize/score_merge.h"
#include "attnspec/tokenize/unicode.h"

namespace attnspec {

namespace fs = std::filesystem;

namespace {

class ScoreMergeTokenizer final : public Tokenizer {
 public:
  ScoreMergeTokenizer(ScoreMergeEncoder encoder, std::vector<int32_t> prefix, std::vector<int32_t> suffix,
                      std::string description, AddedTokenMatcher added = {})
      : encoder_(std::move(encoder)), prefix_(std::move(prefix)), suffix_(std::move(suffix)),
        description_(std::move(description)), added_(std::move(added)) {}
  std::vector<int32_t> encode(std::string_view text) const override {
    if (const size_t bad = unicode::first_invalid_utf8(text); bad != std::string::npos)
      throw InputError("text to tokenize: invalid UTF-8 at byte offset " + std::to_string(bad));
    if (added_.empty()) return encoder_.encode(text);
    // Added tokens are matched in the raw text first; each stretch between them is encoded on its
    // own, dummy prefix included (as HF's per-segment normalizer and llama.cpp's SPM session do).
    std::vector<int32_t> ids;
    for (const auto& seg : added_.split(text)) {
      if (seg.id >= 0) {
        ids.push_back(seg.id);
      } else {
        const auto part = encoder_.encode(text.substr(seg.begin, seg.end - seg.begin));
        ids.insert(ids.end(), part.begin(), part.end());
      }
    }
    return ids;
  }
  const std::vector<int32_t>& prefix_special() const override { return prefix_; }
  const std::vector<int32_t>& suffix_special() const override { return suffix_; }
  std::string describe() const override { return description_; }

 private:
  ScoreMergeEncoder encoder_;
  std::vector<int32_t> prefix_, suffix_;
  std::string description_;
  AddedTokenMatcher added_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_score_merge_tokenizer(ScoreMergeEncoder encoder, std::vector<int32_t> prefix,
                                                      std::vector<int32_t> suffix, std::string description,
                                                      std::vector<AddedToken> added) {
  std::vector<std::string> patterns;
  for (const auto& t : added) patterns.push_back(t.content);
  return std::make_unique<ScoreMergeTokenizer>(std::move(encoder), std::move(prefix), std::move(suffix),
                                               std::move(description), AddedTokenMatcher(std::move(added), patterns));
}

std::unique_ptr<Tokenizer> parse_llama2c_tokenizer(const std::byte* data, size_t size, const std::string& where) {
  size_t at = 0;
  auto read_i32 = [&](const char* what) {
    if (size - at < 4) throw input_error(where, std::string("llama2.c tokenizer truncated in ") + what + " at byte " + std::to_string(at));
    int32_t v;
    std::memcpy(&v, data + at, 4);
    at += 4;
    return v;
  };
  const int32_t max_len = read_i32("max_token_length");
  if (max_len <= 0 || max_len > (1 << 16))
    throw input_error(where, "llama2.c tokenizer max_token_length " + std::to_string(max_len) + " is not plausible");
  std::vector<std::string> pieces;
  std::vector<float> scores;
  while (at < size) {
    if (pieces.size() >= (1u << 24)) throw input_error(where, "llama2.c tokenizer holds implausibly many tokens");
    const int32_t score_bits = read_i32("a score");
    float score;
    std::memcpy(&score, &score_bits, 4);
    const int32_t len = read_i32("a token length");
    if (len < 0 || len > max_len)
      throw input_error(where, "token " + std::to_string(pieces.size()) + " has length " + std::to_string(len) +
                                   " outside [0, max_token_length " + std::to_string(max_len) + "]");
    if (size - at < size_t(len))
      throw input_error(where, "llama2.c tokenizer truncated in token " + std::to_string(pieces.size()));
    pieces.emplace_back(reinterpret_cast<const char*>(data + at), size_t(len));
    scores.push_back(score);
    at += size_t(len);
  }
  if (pieces.size() < 3) throw input_error(where, "llama2.c tokenizer holds " + std::to_string(pieces.size()) + " tokens");
  const size_t n = pieces.size();
  // run.c: id 0 <unk>, 1 BOS, 2 EOS; every text starts with BOS.
  ScoreMergeEncoder encoder(std::move(pieces), std::move(scores), " ", true, 0);
  return std::make_unique<ScoreMergeTokenizer>(std::move(encoder), std::vector<int32_t>{1}, std::vector<int32_t>{},
                                               "llama2.c score-merge BPE, " + std::to_string(n) + " tokens (" +
                                                   fs::path(where).filename().string() + ")");
}

std::unique_ptr<Tokenizer> load_llama2c_tokenizer(const fs::path& path) {
  MappedFile file(path);
  return parse_llama2c_tokenizer(file.data(), file.size(), path.string());
}

std::unique_ptr<Tokenizer> load_tokenizer_file(const fs::path& path) {
  if (is_gguf_file(path) || path.extension() == ".gguf") return load_gguf_tokenizer(path);
  const std::string name = path.filename().string();
  if (name.starts_with("tok") && path.extension() == ".bin") return load_llama2c_tokenizer(path);
  if (path.extension() == ".bin") {
    // A llama2.c checkpoint: its tokenizer is the one tok*.bin beside it.
    std::vector<fs::path> found;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(path.parent_path().empty() ? fs::path(".") : path.parent_path(), ec)) {
      const std::string n = e.path().filename().string();
      if (e.is_regular_file() && n.starts_with("tok") && e.path().extension() == ".bin") found.push_back(e.path());
    }
    if (found.size() == 1) return load_llama2c_tokenizer(found[0]);
    throw input_error(path.string(), found.empty() ? "no llama2.c tokenizer (tok*.bin) beside this checkpoint; pass --tokenizer FILE"
                                                   : "several tok*.bin beside this checkpoint; pass --tokenizer FILE");
  }
  throw input_error(path.string(), "is not a tokenizer folder, a GGUF file or a llama2.c tokenizer (tok*.bin)");
}

}  // namespace attnspec
