// The stages of a `tokenizers` pipeline before the model: normalizers and pre-tokenizers, built
// from their tokenizer.json descriptions. Offsets are not tracked; the only thing a later stage
// needs to know about the original text is whether a piece starts at its very beginning.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace attnspec {

struct Piece {
  std::string text;
  bool at_start = false;  // the piece begins at byte 0 of the text given to encode()
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces every piece by its sub-pieces (empty ones are dropped).
  virtual void split(std::vector<Piece>& pieces) const = 0;
};

// Both throw InputError naming `path` for an unknown or malformed description. A null JSON
// value gives nullptr.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& description,
                                            const std::string& path);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& description,
                                                 const std::string& path);

// GPT-2's pre-tokenizer (regex split + byte-to-unicode), used for vocab.json + merges.txt.
std::unique_ptr<PreTokenizer> make_gpt2_pre_tokenizer();

// True when the pre-tokenizer maps bytes to GPT-2's printable characters (anywhere in it).
bool is_byte_level(const PreTokenizer& pre_tokenizer);

}  // namespace attnspec
