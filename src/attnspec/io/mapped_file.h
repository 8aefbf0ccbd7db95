// A read-only memory map of a whole file (llama.cpp style: weights are paged in by the OS as the
// forward touches them, never read whole into the heap).
#pragma once

#include <cstddef>
#include <filesystem>

namespace attnspec {

class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);  // throws InputError
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace attnspec
