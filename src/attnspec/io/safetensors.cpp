#include "attnspec/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "attnspec/common/error.h"

namespace attnspec {
namespace {

// A safetensors header is JSON; real ones are a few MB at most. Anything larger is corrupt and
// would only make us allocate.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

bool parse_dtype(const std::string& s, DType* out) {
  if (s == "F32") *out = DType::F32;
  else if (s == "F16") *out = DType::F16;
  else if (s == "BF16") *out = DType::BF16;
  else return false;
  return true;
}

// Bytes per element of the integer and boolean dtypes, 0 for any other.
int integer_dtype_size(const std::string& s) {
  if (s == "I64" || s == "U64") return 8;
  if (s == "I32" || s == "U32") return 4;
  if (s == "I16" || s == "U16") return 2;
  if (s == "I8" || s == "U8" || s == "BOOL") return 1;
  return 0;
}

}  // namespace

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorView::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {

// Elements [first, first + count) of the stored array, no permutation: whole blocks straight into
// `out`, a block cut by the range through a small buffer.
void widen_stored(DType dtype, const std::byte* data, float* out, size_t first, size_t count) {
  const TypeLayout& t = layout(dtype);
  const size_t block = t.block;
  size_t head = first % block;
  if (head != 0) {  // the first block, from inside it
    float buf[256];
    const size_t n = std::min(count, block - head);
    t.to_float(data + first / block * t.bytes, 1, buf);
    std::memcpy(out, buf + head, n * sizeof(float));
    out += n, first += n, count -= n;
  }
  const size_t whole = count / block;
  t.to_float(data + first / block * t.bytes, whole, out);
  out += whole * block, first += whole * block, count -= whole * block;
  if (count > 0) {  // the last block, up to inside it
    float buf[256];
    t.to_float(data + first / block * t.bytes, 1, buf);
    std::memcpy(out, buf, count * sizeof(float));
  }
}

}  // namespace

void TensorView::to_float32(float* out, size_t first, size_t count) const {
  to_float32_stored(out, first, count);
  if (add != 0.0f)
    for (size_t i = 0; i < count; ++i) out[i] += add;  // one float32 rounding, as numpy's w - 1
}

void TensorView::to_float32_stored(float* out, size_t first, size_t count) const {
  const int64_t row_len = shape.empty() ? 1 : std::max<int64_t>(1, numel() / std::max<int64_t>(1, shape[0]));
  if (!row_perm) {
    widen_stored(dtype, data, out, first, count);
    return;
  }
  // Row by row through the permutation.
  const auto& perm = *row_perm;
  while (count > 0) {
    const size_t r = first / row_len, c = first % row_len, n = std::min<size_t>(count, row_len - c);
    widen_stored(dtype, data, out, size_t(perm[r]) * row_len + c, n);
    out += n;
    first += n;
    count -= n;
  }
}

const float* TensorView::direct_float32() const {
  if (dtype != DType::F32 || row_perm || add != 0.0f || reinterpret_cast<uintptr_t>(data) % alignof(float) != 0)
    return nullptr;
  return reinterpret_cast<const float*>(data);
}

std::vector<TensorView> parse_safetensors(const std::byte* data, size_t size, const std::string& where) {
  if (size < 8) throw input_error(where, "truncated safetensors file (" + std::to_string(size) + " bytes)");
  uint64_t header_len;
  std::memcpy(&header_len, data, 8);  // little-endian u64
  if (header_len > kMaxHeaderBytes)
    throw input_error(where, "safetensors header length " + std::to_string(header_len) + " exceeds the 100 MB limit");
  if (header_len > size - 8)
    throw input_error(where, "safetensors header length " + std::to_string(header_len) +
                                 " runs past the end of the file (" + std::to_string(size) + " bytes)");
  const char* header = reinterpret_cast<const char*>(data) + 8;
  nlohmann::json j = nlohmann::json::parse(header, header + header_len, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw input_error(where, "safetensors header is not a JSON object");

  const std::byte* base = data + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  std::vector<TensorView> out;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto& [name, info] : j.items()) {
    if (name == "__metadata__") continue;
    const std::string what = "tensor '" + name + "'";
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets"))
      throw input_error(where, what + " lacks dtype, shape or data_offsets");
    TensorView t;
    t.name = name;
    // Integer buffers (BERT's `position_ids`, index tables) are not weights: their bytes are
    // checked like any tensor's, then they are left out.
    size_t element_size = 0;
    const int integer_size = info["dtype"].is_string() ? integer_dtype_size(info["dtype"].get<std::string>()) : 0;
    if (integer_size > 0) element_size = static_cast<size_t>(integer_size);
    else if (!info["dtype"].is_string() || !parse_dtype(info["dtype"].get<std::string>(), &t.dtype))
      throw input_error(where, what + " has dtype " + info["dtype"].dump() + "; supported: F32, F16, BF16");
    else element_size = layout(t.dtype).bytes;
    const auto& shape = info["shape"];
    if (!shape.is_array()) throw input_error(where, what + " has a shape that is not an array");
    uint64_t numel = 1;
    for (const auto& d : shape) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        throw input_error(where, what + " has an invalid dimension " + d.dump());
      const uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / 8 / dim)
        throw input_error(where, what + " has a shape whose size overflows");
      numel *= dim;
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    const auto& off = info["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw input_error(where, what + " has malformed data_offsets");
    const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end || end > data_size)
      throw input_error(where, what + " has data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                                   ") outside the data section (" + std::to_string(data_size) + " bytes)");
    if (end - begin != numel * element_size)
      throw input_error(where, what + " holds " + std::to_string(end - begin) + " bytes but its shape " +
                                   t.shape_string() + " and dtype " + info["dtype"].get<std::string>() + " need " +
                                   std::to_string(numel * element_size));
    ranges.emplace_back(begin, end);
    if (integer_size > 0) continue;
    t.data = base + begin;
    t.nbytes = end - begin;
    out.push_back(std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second && ranges[i].first != ranges[i].second)
      throw input_error(where, "tensor data ranges overlap");
  return out;
}

void TensorStore::add_file(const std::filesystem::path& path) {
  auto file = std::make_unique<MappedFile>(path);
  for (TensorView& t : parse_safetensors(file->data(), file->size(), path.string())) {
    if (tensors_.count(t.name)) throw input_error(path.string(), "tensor '" + t.name + "' appears in more than one file");
    t.file = file.get();
    const std::string name = t.name;
    tensors_.emplace(name, std::move(t));
  }
  files_.push_back(std::move(file));
}

std::unique_ptr<TensorStore> TensorStore::open(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  auto store = std::make_unique<TensorStore>();
  if (fs::is_regular_file(path)) {
    store->add_file(path);
    return store;
  }
  if (!fs::is_directory(path)) throw input_error(path.string(), "no such checkpoint folder or file");
  const fs::path index = path / "model.safetensors.index.json";
  if (fs::exists(index)) {
    // Sharded: the index's weight_map names each tensor's shard.
    std::ifstream in(index);
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw input_error(index.string(), "not a safetensors index (no weight_map object)");
    std::set<std::string> shards;
    for (auto& [name, shard] : j["weight_map"].items()) {
      if (!shard.is_string()) throw input_error(index.string(), "weight_map entry for '" + name + "' is not a file name");
      shards.insert(shard.get<std::string>());
    }
    for (const auto& shard : shards) {
      const fs::path p = path / shard;
      if (shard.find('/') != std::string::npos || !fs::exists(p))
        throw input_error(index.string(), "names shard '" + shard + "', which is not in " + path.string());
      store->add_file(p);
    }
    for (auto& [name, shard] : j["weight_map"].items())
      if (!store->find(name))
        throw input_error((path / shard.get<std::string>()).string(), "lacks tensor '" + name + "' that the index names");
    return store;
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(path))
    if (e.is_regular_file() && e.path().extension() == ".safetensors") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  if (files.empty()) throw input_error(path.string(), "no *.safetensors file in the checkpoint folder");
  for (const auto& f : files) store->add_file(f);
  return store;
}

const MappedFile& TensorStore::adopt(std::unique_ptr<MappedFile> file) {
  files_.push_back(std::move(file));
  return *files_.back();
}

void TensorStore::add_view(TensorView view) {
  if (tensors_.count(view.name)) throw input_error(view.file ? view.file->path().string() : "checkpoint",
                                                   "tensor '" + view.name + "' appears twice");
  const std::string name = view.name;
  tensors_.emplace(name, std::move(view));
}

const TensorView* TensorStore::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const TensorView& TensorStore::at(const std::string& name) const {
  if (const TensorView* t = find(name)) return *t;
  std::string where = files_.empty() ? std::string("checkpoint") : files_.front()->path().parent_path().string();
  throw input_error(where, "missing tensor '" + name + "'");
}

size_t TensorStore::total_bytes() const {
  size_t n = 0;
  for (const auto& f : files_) n += f->size();
  return n;
}

std::vector<std::filesystem::path> TensorStore::files() const {
  std::vector<std::filesystem::path> out;
  for (const auto& f : files_) out.push_back(f->path());
  return out;
}

}  // namespace attnspec
