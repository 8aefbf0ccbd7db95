// Hugging Face safetensors checkpoints: one file, or many shards named by
// `model.safetensors.index.json`. Every header is validated against its file before any tensor is
// touched; tensor data stays memory-mapped in its stored dtype and is widened to float32 on demand.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "attnspec/io/ggml_types.h"
#include "attnspec/io/mapped_file.h"

namespace attnspec {

// A tensor as stored: row-major `shape`, in `dtype` (ggml_types.h: a plain type, or a block format
// whose blocks never straddle rows), at `data` inside a memory-mapped file (it may be one slice of
// a larger array there). `row_perm`, when set, reorders the first dimension:
// logical row r is stored row (*row_perm)[r]. Converters that permute Q/K rows for another RoPE
// convention are undone this way, exactly and without copying the weights.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;  // inside a MappedFile
  size_t nbytes = 0;
  const MappedFile* file = nullptr;
  std::shared_ptr<const std::vector<int64_t>> row_perm;
  // Added to every value after widening: llama.cpp's converter stores Gemma's norm weights as
  // 1 + w (what its plain RMSNorm multiplies by), -1 gives back Hugging Face's w.
  float add = 0.0f;

  int64_t numel() const;
  std::string shape_string() const;  // "[768, 2304]"
  // Converts logical elements [first, first + count) to float32 into `out`.
  void to_float32(float* out, size_t first, size_t count) const;
  void to_float32_stored(float* out, size_t first, size_t count) const;  // without `add`
  // The data as float32 in place (F32, aligned, not permuted), else nullptr.
  const float* direct_float32() const;
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

  // For readers of other formats: keep `file` mapped for the store's lifetime, and add views
  // into it (their `file` is set here; a name given twice is an InputError).
  const MappedFile& adopt(std::unique_ptr<MappedFile> file);
  void add_view(TensorView view);

  // Float32 copies of tensors stored in another dtype, kept for the store's lifetime: the forward
  // pass widens each once per run instead of once per window when they all fit (model/weights.h).
  struct KeptFloat32 {
    std::mutex mutex;  // forward passes on one model may run in several threads
    std::map<std::string, std::unique_ptr<float[]>> copies;
  };
  KeptFloat32& kept_float32() const { return *kept_; }

 private:
  std::vector<std::unique_ptr<MappedFile>> files_;
  std::map<std::string, TensorView> tensors_;
  std::unique_ptr<KeptFloat32> kept_ = std::make_unique<KeptFloat32>();
};

}  // namespace attnspec
