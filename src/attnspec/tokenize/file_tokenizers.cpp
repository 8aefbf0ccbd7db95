#include "attnspec/tokenize/file_tokenizers.h"

#include <cstring>

#include "attnspec/common/error.h"
#include <nlohmann/json.hpp>

#include "attnspec/io/checkpoint_file.h"
#include "attnspec/io/gguf.h"
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

namespace {

// Pre-tokenizers of tokenizer.ggml.pre, as the matching tokenizer.json files describe them.
nlohmann::json pre_tokenizer_for(const std::string& pre, const std::string& where) {
  using nlohmann::json;
  const std::string gpt4_style = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}";
  auto split_then_bytes = [&](const std::string& numbers, bool trim) {
    return json{{"type", "Sequence"},
                {"pretokenizers",
                 {{{"type", "Split"},
                   {"pattern", {{"Regex", gpt4_style + numbers + "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}}},
                   {"behavior", "Isolated"},
                   {"invert", false}},
                  {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", trim}, {"use_regex", false}}}}};
  };
  if (pre == "gpt-2" || pre == "default")
    return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  if (pre == "llama-bpe" || pre == "llama3") return split_then_bytes("{1,3}", true);
  if (pre == "qwen2") return split_then_bytes("", false);
  // SmolLM's tokenizer.json: every digit its own piece, then GPT-2's byte-level split (llama.cpp's
  // "smollm" regexes \p{N} then GPT-2's say the same).
  if (pre == "smollm")
    return {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Digits"}, {"individual_digits", true}},
              {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}}}};
  throw input_error(where, "GGUF tokenizer.ggml.pre '" + pre + "' is not supported (gpt-2, llama-bpe, qwen2, smollm)");
}

}  // namespace

std::unique_ptr<Tokenizer> make_gguf_tokenizer(GgufTokenizerData data, const std::string& where) {
  const int64_t n = int64_t(data.tokens.size());
  std::vector<int32_t> prefix, suffix;
  if (data.add_bos) prefix.push_back(*data.bos);  // gguf_tokenizer_data() checked that the ids exist
  if (data.add_eos) suffix.push_back(*data.eos);
  const auto& types = data.token_types;
  if (data.model == GgufTokenizerModel::Llama) {
    std::vector<std::string> pieces = std::move(data.tokens);
    std::vector<float> scores = std::move(data.scores);
    scores.resize(size_t(n), 0.0f);  // none in the file: all 0
    // Control tokens (type 3: <s>, Gemma's <start_of_turn>) and user-defined ones (type 4: Gemma's
    // runs of spaces and tabs) are matched whole in the raw text, as HF's added tokens and
    // llama.cpp's special-token partition match them.
    std::vector<AddedToken> added;
    for (int64_t i = 0; i < int64_t(types.size()); ++i) {
      const int64_t type = types[i];
      if ((type == 3 || type == 4) && !pieces[i].empty())
        added.push_back({.content = pieces[i], .id = int32_t(i), .special = type == 3, .normalized = false});
    }
    ScoreMergeEncoder encoder(std::move(pieces), std::move(scores), "\xE2\x96\x81", data.add_space_prefix,
                              data.unk.value_or(0));
    return make_score_merge_tokenizer(std::move(encoder), std::move(prefix), std::move(suffix),
                                      "SentencePiece score-merge BPE, " + std::to_string(n) + " tokens (GGUF)",
                                      std::move(added));
  }
  // GPT-2 style: described as the tokenizer.json it came from: BPE vocab and merges, the
  // pre-tokenizer named by tokenizer.ggml.pre, control tokens as special added tokens.
  nlohmann::json vocab = nlohmann::json::object(), added = nlohmann::json::array();
  for (int64_t i = 0; i < n; ++i) {
    const std::string& t = data.tokens[i];
    vocab[t] = i;
    const int64_t type = types.empty() ? 1 : types[i];
    if (type == 3 || type == 4)  // CONTROL, USER_DEFINED
      added.push_back({{"id", i}, {"content", t}, {"special", type == 3}, {"normalized", false}});
  }
  const std::string& pre = data.pre;
  nlohmann::json j = {{"model", {{"type", "BPE"}, {"vocab", std::move(vocab)}, {"merges", std::move(data.merges)}}},
                      {"pre_tokenizer", pre_tokenizer_for(pre, where)},
                      {"normalizer", pre == "qwen2" ? nlohmann::json{{"type", "NFC"}} : nlohmann::json()},
                      {"added_tokens", std::move(added)}};
  return bpe_tokenizer_from_json(j, where, std::move(prefix), std::move(suffix),
                                 "byte-level BPE, " + std::to_string(n) + " tokens (GGUF, pre " + pre + ")");
}

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const fs::path& path) {
  return make_gguf_tokenizer(read_gguf_tokenizer(path), path.string());
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
