// GGUF, llama.cpp's one-file checkpoint: "GGUF", version (2 or 3), tensor and key counts, typed
// metadata (key -> value, arrays included), tensor infos (name, dims innermost first, type,
// offset), then the aligned data section. Every count, length and offset is checked against the
// file before it is used.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attnspec/io/ggml_types.h"

namespace attnspec {

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> ne;  // dims, innermost (columns) first
  uint32_t type = 0;         // ggml_type
  uint64_t offset = 0;       // from the start of the data section
  uint64_t nbytes = 0;
};

struct GgufFile {
  uint32_t version = 0;
  // Metadata values as JSON (integers, floats, bools, strings, arrays); strings hold the raw
  // bytes. `metadata_types` keeps each key's GGUF value type (9 = array).
  std::map<std::string, nlohmann::json> metadata;
  std::map<std::string, uint32_t> metadata_types;
  std::vector<GgufTensorInfo> tensors;
  uint64_t alignment = 32;
  uint64_t data_offset = 0;  // of the data section in the file

  const nlohmann::json* find(const std::string& key) const {
    auto it = metadata.find(key);
    return it == metadata.end() ? nullptr : &it->second;
  }
};

// Parses and validates the header, metadata and tensor infos of a GGUF file held in `data`.
// Every tensor must have a type attnspec reads (ggml_types.h), rows of whole blocks, and lie inside
// the data section without overlap. `where` names the file.
GgufFile parse_gguf(const std::byte* data, size_t size, const std::string& where);

// The general.architecture values attnspec reads, comma separated.
std::string gguf_architectures();

// The tokenizer a GGUF file carries in its metadata (tokenizer.ggml.*), as plain data: the keys
// its model uses, checked for type, consistent lengths and valid special ids. Building a Tokenizer
// from it is tokenize/'s business (file_tokenizers.h).
enum class GgufTokenizerModel {
  Llama,  // "llama": SentencePiece pieces (U+2581 for a space) merged by score
  Gpt2,   // "gpt2": byte-level BPE with merges and a named pre-tokenizer
};

struct GgufTokenizerData {
  GgufTokenizerModel model = GgufTokenizerModel::Llama;
  std::vector<std::string> tokens;   // never empty
  std::vector<int64_t> token_types;  // as many as tokens, or empty when absent (1 normal, 3 control, 4 user-defined)
  std::optional<int32_t> bos, eos, unk;  // valid token ids when present
  // The file's flags, else llama.cpp's defaults (add BOS for Llama, not for GPT-2); the id is set when
  // its flag is.
  bool add_bos = false, add_eos = false;
  // Llama only.
  std::vector<float> scores;  // as many as tokens, or empty when absent
  bool add_space_prefix = true;
  // Gpt2 only.
  std::vector<std::string> merges;  // "left right"
  std::string pre = "default";      // tokenizer.ggml.pre
};

// Reads the tokenizer metadata of a parsed file; `where` names it in errors. Throws InputError when
// the file has no tokenizer, a model other than llama and gpt2, or inconsistent values.
GgufTokenizerData gguf_tokenizer_data(const GgufFile& f, const std::string& where);
// The same from a GGUF file on disk.
GgufTokenizerData read_gguf_tokenizer(const std::filesystem::path& path);

}  // namespace attnspec
