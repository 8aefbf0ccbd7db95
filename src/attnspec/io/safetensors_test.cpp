// The safetensors reader on files written here byte by byte, valid and corrupt.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "attnspec/common/error.h"
#include "attnspec/io/safetensors.h"

namespace attnspec {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir() {
  fs::path d = fs::temp_directory_path() / ("attnspec_st_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
                                           "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::create_directories(d);
  return d;
}

// Writes a safetensors file: 8-byte little-endian header length, JSON header, data.
fs::path write_file(const fs::path& path, const std::string& header, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  const uint64_t len = header.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out << header << data;
  return path;
}

std::string bytes_of(const std::vector<float>& v) { return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4); }

std::string error_of(const fs::path& p) {
  try {
    TensorStore::open(p);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, ReadsF32F16Bf16) {
  const fs::path dir = temp_dir();
  // F32 [2,2] = 1,2,3,4; F16 [2] = 1.0 (0x3c00), -2.0 (0xc000); BF16 [2] = 1.0 (0x3f80), 0.5 (0x3f00); subnormal F16 0x0001
  std::string data = bytes_of({1, 2, 3, 4});
  const uint16_t f16[] = {0x3c00, 0xc000, 0x0001}, bf16[] = {0x3f80, 0x3f00};
  data.append(reinterpret_cast<const char*>(f16), 6);
  data.append(reinterpret_cast<const char*>(bf16), 4);
  write_file(dir / "model.safetensors",
             R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
             R"("h":{"dtype":"F16","shape":[3],"data_offsets":[16,22]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[22,26]}})",
             data);
  auto store = TensorStore::open(dir);
  ASSERT_EQ(store->tensors().size(), 3u);
  const TensorView& a = store->at("a");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 2}));
  float out[4];
  a.to_float32(out, 0, 4);
  EXPECT_EQ(out[3], 4.0f);
  store->at("h").to_float32(out, 0, 3);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_FLOAT_EQ(out[2], std::ldexp(1.0f, -24));
  store->at("b").to_float32(out, 0, 2);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 0.5f);
  EXPECT_THROW(store->at("missing"), InputError);
}

TEST(Safetensors, SkipsIntegerBuffers) {
  // BERT checkpoints carry `embeddings.position_ids` as I64: checked, then left out.
  const fs::path dir = temp_dir();
  write_file(dir / "model.safetensors",
             R"({"position_ids":{"dtype":"I64","shape":[1,2],"data_offsets":[0,16]},)"
             R"("w":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}})",
             std::string(16, '\0') + bytes_of({3}));
  auto store = TensorStore::open(dir);
  EXPECT_EQ(store->tensors().size(), 1u);
  EXPECT_EQ(store->find("position_ids"), nullptr);
  float v;
  store->at("w").to_float32(&v, 0, 1);
  EXPECT_EQ(v, 3.0f);
}

TEST(Safetensors, ShardedIndex) {
  const fs::path dir = temp_dir();
  write_file(dir / "model-00001-of-00002.safetensors", R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", bytes_of({7}));
  write_file(dir / "model-00002-of-00002.safetensors", R"({"y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", bytes_of({8}));
  std::ofstream(dir / "model.safetensors.index.json")
      << R"({"metadata":{},"weight_map":{"x":"model-00001-of-00002.safetensors","y":"model-00002-of-00002.safetensors"}})";
  auto store = TensorStore::open(dir);
  float v;
  store->at("y").to_float32(&v, 0, 1);
  EXPECT_EQ(v, 8.0f);

  std::ofstream(dir / "model.safetensors.index.json") << R"({"weight_map":{"x":"missing.safetensors"}})";
  EXPECT_NE(error_of(dir).find("missing.safetensors"), std::string::npos);
}

TEST(Safetensors, RejectsCorruptFiles) {
  const fs::path dir = temp_dir();
  struct Case { const char* name; std::string header; std::string data; const char* message; };
  const std::vector<Case> cases = {
      {"bad_json", "{not json", "", "not a JSON object"},
      {"bad_dtype", R"({"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", std::string(8, '\0'), "dtype"},
      {"int_wrong_size", R"({"a":{"dtype":"I64","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0'), "need 16"},
      {"past_end", R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(8, '\0'), "outside the data section"},
      {"wrong_size", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0'), "need 12"},
      {"overflow", R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", std::string(8, '\0'), "overflows"},
      {"negative", R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", std::string(4, '\0'), "invalid dimension"},
      {"overlap", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       std::string(12, '\0'), "overlap"},
      {"no_offsets", R"({"a":{"dtype":"F32","shape":[2]}})", std::string(8, '\0'), "lacks"},
  };
  for (const auto& c : cases) {
    const fs::path p = write_file(dir / (std::string(c.name) + ".safetensors"), c.header, c.data);
    const std::string err = error_of(p);
    EXPECT_NE(err.find(c.message), std::string::npos) << c.name << ": " << err;
    EXPECT_NE(err.find(p.string()), std::string::npos) << c.name << " does not name the file: " << err;
  }
  // Header length beyond the file, and a file shorter than the length field itself.
  {
    std::ofstream out(dir / "huge.safetensors", std::ios::binary);
    const uint64_t len = 1000;
    out.write(reinterpret_cast<const char*>(&len), 8);
    out << "{}";
  }
  EXPECT_NE(error_of(dir / "huge.safetensors").find("runs past the end"), std::string::npos);
  std::ofstream(dir / "tiny.safetensors") << "abc";
  EXPECT_NE(error_of(dir / "tiny.safetensors").find("truncated"), std::string::npos);
}

}  // namespace
}  // namespace attnspec
