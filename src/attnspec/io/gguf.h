// GGUF, llama.cpp's one-file checkpoint: "GGUF", version (2 or 3), tensor and key counts, typed
// metadata (key -> value, arrays included), tensor infos (name, dims innermost first, type,
// offset), then the aligned data section. Every count, length and offset is checked against the
// file before it is used.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
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

}  // namespace attnspec
