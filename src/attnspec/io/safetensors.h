// Hugging Face safetensors checkpoints: one file, or many shards named by
// `model.safetensors.index.json`. Every header is validated against its file before any tensor is
// touched; tensor data stays memory-mapped in its stored dtype and is widened to float32 on demand.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "attnspec/io/mapped_file.h"

namespace attnspec {

enum class DType { F32, F16, BF16 };

const char* dtype_name(DType t);
size_t dtype_size(DType t);

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;  // inside a MappedFile
  size_t nbytes = 0;
  const MappedFile* file = nullptr;

  int64_t numel() const;
  std::string shape_string() const;  // "[768, 2304]"
  // Converts elements [first, first + count) to float32 into `out`.
  void to_float32(float* out, size_t first, size_t count) const;
};

// Parses and validates a whole safetensors file held in memory (header length against the size,
// header JSON, dtypes, shapes and their byte sizes, data_offsets in range and not overlapping).
// `where` names the file in errors. The views point into `data`.
std::vector<TensorView> parse_safetensors(const std::byte* data, size_t size, const std::string& where);

// All tensors of a checkpoint folder (or of a single .safetensors file), by name.
class TensorStore {
 public:
  // `path`: a folder with model.safetensors, or with model.safetensors.index.json and its shards,
  // or with any number of *.safetensors files; or one .safetensors file. Throws InputError.
  static std::unique_ptr<TensorStore> open(const std::filesystem::path& path);

  const TensorView* find(const std::string& name) const;
  const TensorView& at(const std::string& name) const;  // throws InputError naming the tensor
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  // Bytes of tensor data on disk, over all files.
  size_t total_bytes() const;
  std::vector<std::filesystem::path> files() const;

  // Parses one file's header into `tensors_` (public for tests and fuzzing).
  void add_file(const std::filesystem::path& file);

 private:
  std::vector<std::unique_ptr<MappedFile>> files_;
  std::map<std::string, TensorView> tensors_;
};

}  // namespace attnspec
