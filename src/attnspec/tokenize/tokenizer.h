// Tokenizers driven by a checkpoint's own files, producing exactly the ids of Hugging Face
// `tokenizers` (`encode(text, add_special_tokens=False)`), plus the per-window special tokens its
// post-processor adds (BOS for Llama-3 and Mistral, [CLS] ... [SEP] for BERT, nothing for GPT-2 and Qwen2).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace attnspec {

class Tokenizer {
 public:
  // Loads `dir/tokenizer.json`, or GPT-2's `vocab.json` + `merges.txt`, or `tokenizer.model`
  // (SentencePiece), or BERT's `vocab.txt` (WordPiece), in that order of preference; or, given a
  // file, the tokenizer of a GGUF file, a llama2.c tok*.bin, or the tok*.bin beside a llama2.c
  // checkpoint (file_tokenizers.h). Throws InputError naming the file on bad input.
  static std::unique_ptr<Tokenizer> load(const std::filesystem::path& dir);
  // True when `dir` holds any tokenizer file load() understands, or is a file.
  static bool present(const std::filesystem::path& dir);

  virtual ~Tokenizer() = default;

  // Ids of `text` with no special token added. `text` must be valid UTF-8 (see text.h).
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;

  // What the post-processor puts before / after a single sequence when special tokens are
  // requested (e.g. {128000} / {} for Llama-3). analyze() applies them to every window.
  virtual const std::vector<int32_t>& prefix_special() const = 0;
  virtual const std::vector<int32_t>& suffix_special() const = 0;

  // A short description for summary.json, e.g. "byte-level BPE (tokenizer.json)".
  virtual std::string describe() const = 0;
};

}  // namespace attnspec
