// TensorView's Q8_0 blocks and row permutations, and the RoPE pair permutation.
#include <gtest/gtest.h>

#include <cstring>

#include "attnspec/io/checkpoint_file.h"

namespace attnspec {
namespace {

// One Q8_0 block: scale (F16 bits) then 32 int8.
void put_block(std::vector<std::byte>& out, uint16_t scale_bits, int first) {
  const size_t at = out.size();
  out.resize(at + 34);
  std::memcpy(out.data() + at, &scale_bits, 2);
  for (int i = 0; i < 32; ++i) out[at + 2 + i] = std::byte(static_cast<uint8_t>(static_cast<int8_t>(first + i)));
}

TEST(TensorView, Q8_0BlocksAnyRange) {
  std::vector<std::byte> data;
  put_block(data, 0x3C00, -16);  // scale 1.0: values -16 .. 15
  put_block(data, 0x4000, 0);    // scale 2.0: values 0, 2, .. 62
  TensorView t;
  t.dtype = DType::Q8_0;
  t.shape = {64};
  t.data = data.data();
  t.nbytes = data.size();
  std::vector<float> all(64);
  t.to_float32(all.data(), 0, 64);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(all[i], float(i - 16));
  for (int i = 0; i < 32; ++i) EXPECT_EQ(all[32 + i], 2.0f * i);
  std::vector<float> part(10);
  t.to_float32(part.data(), 27, 10);  // straddles the two blocks
  for (int i = 0; i < 10; ++i) EXPECT_EQ(part[i], all[27 + i]);
}

TEST(TensorView, RowPermutationReadsStoredRows) {
  std::vector<float> stored(4 * 3);
  for (int i = 0; i < 12; ++i) stored[i] = float(i);
  TensorView t;
  t.shape = {4, 3};
  t.data = reinterpret_cast<const std::byte*>(stored.data());
  t.nbytes = 48;
  t.row_perm = std::make_shared<std::vector<int64_t>>(std::vector<int64_t>{2, 0, 3, 1});
  EXPECT_EQ(t.direct_float32(), nullptr);  // a permuted tensor is never used in place
  std::vector<float> out(12);
  t.to_float32(out.data(), 0, 12);
  EXPECT_EQ(out, (std::vector<float>{6, 7, 8, 0, 1, 2, 9, 10, 11, 3, 4, 5}));
  std::vector<float> mid(4);
  t.to_float32(mid.data(), 2, 4);  // row 0's last element, row 1 whole
  EXPECT_EQ(mid, (std::vector<float>{8, 0, 1, 2}));
}

TEST(RotateHalfRows, MatchesHuggingFacePermute) {
  // HF's permute: W.reshape(H, d/2, 2, D).transpose(1, 2): HF row h*d + t*d/2 + i = stored h*d + 2i + t.
  const auto perm = rotate_half_rows(2, 8);
  EXPECT_EQ(*perm, (std::vector<int64_t>{0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15}));
}

}  // namespace
}  // namespace attnspec
