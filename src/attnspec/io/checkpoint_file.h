// Checkpoints that are one file in a format other than a Hugging Face folder: GGUF (llama.cpp) and
// llama2.c's `.bin`. Each reader describes its file as Hugging Face would: a config object with the
// meaning of config.json and tensors under Hugging Face names, still memory-mapped in their stored
// dtype. load_model() then validates and runs them exactly like a safetensors folder.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attnspec/io/safetensors.h"

namespace attnspec {

struct FileCheckpoint {
  std::string format;        // "gguf" or "llama2.c"
  nlohmann::json config;     // what config.json would say
  std::unique_ptr<TensorStore> store;
};

// Recognises the format by its content (GGUF magic, else a llama2.c header that fits the file
// size). Throws InputError naming the file when it is neither, or is corrupt.
FileCheckpoint open_checkpoint_file(const std::filesystem::path& path);

FileCheckpoint open_llama2c(const std::filesystem::path& path);
FileCheckpoint open_gguf(const std::filesystem::path& path);
// The same readers on bytes already in memory (for tests and fuzzing); views point into `file`.
FileCheckpoint read_llama2c(std::unique_ptr<MappedFile> file);
FileCheckpoint read_gguf(std::unique_ptr<MappedFile> file);


// Meta's Llama code (and llama2.c, and GGUF) rotates adjacent pairs (2i, 2i+1) of each head;
// Hugging Face rotates (i, i + d_h/2). The Hugging Face row h*d_h + t*d_h/2 + i of a Q or K
// projection is the interleaved row h*d_h + 2i + t. Returns that map, logical row -> stored row.
std::shared_ptr<const std::vector<int64_t>> rotate_half_rows(int64_t n_heads, int64_t head_dim);

// True when the file starts with GGUF's magic.
bool is_gguf_file(const std::filesystem::path& path);

}  // namespace attnspec
