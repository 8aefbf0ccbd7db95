// TensorView's Q8_0 blocks and row permutations, the RoPE pair permutation, and the score-merge
// encoder on a hand-made vocabulary.
#include <gtest/gtest.h>

#include <cstring>

#include "attnspec/io/checkpoint_file.h"
#include "attnspec/tokenize/score_merge.h"

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

TEST(ScoreMergeEncoder, BestScoreFirstLeftmostOnTies) {
  //                 0        1    2    3    4     5     6      7
  std::vector<std::string> pieces = {"<unk>", " ", "a", "b", "ab", " a", " ab", "<0x41>"};
  std::vector<float> scores = {0, 0, 0, 0, -1, -2, -0.5f, 0};
  ScoreMergeEncoder enc(pieces, scores, " ", true, 0);
  // " ab": " a" (-2) vs "ab" (-1): "ab" first, then " ab" (-0.5).
  EXPECT_EQ(enc.encode("ab"), (std::vector<int32_t>{6}));
  // "abab" -> " " a b a b: both "ab" pairs tie; the leftmost merges first, then " ab".
  EXPECT_EQ(enc.encode("abab"), (std::vector<int32_t>{6, 4}));
  // "A" has no piece: byte fallback <0x41>; "é" has no byte pieces: unk per byte.
  EXPECT_EQ(enc.encode("A"), (std::vector<int32_t>{1, 7}));
  EXPECT_EQ(enc.encode("\xC3\xA9"), (std::vector<int32_t>{1, 0, 0}));
  EXPECT_TRUE(enc.encode("").empty());
}

}  // namespace
}  // namespace attnspec
