#include "attnspec/io/checkpoint_file.h"

#include <cstring>
#include <fstream>

#include "attnspec/common/error.h"

namespace attnspec {

std::shared_ptr<const std::vector<int64_t>> rotate_half_rows(int64_t n_heads, int64_t head_dim) {
  auto perm = std::make_shared<std::vector<int64_t>>(n_heads * head_dim);
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t t = 0; t < 2; ++t)
      for (int64_t i = 0; i < half; ++i) (*perm)[h * head_dim + t * half + i] = h * head_dim + 2 * i + t;
  return perm;
}

bool is_gguf_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

FileCheckpoint open_checkpoint_file(const std::filesystem::path& path) {
  if (is_gguf_file(path) || path.extension() == ".gguf") return open_gguf(path);
  if (path.extension() == ".bin") return open_llama2c(path);
  throw input_error(path.string(), "is neither a checkpoint folder, a GGUF file nor a llama2.c .bin checkpoint");
}

}  // namespace attnspec
