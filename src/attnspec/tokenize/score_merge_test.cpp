// The score-merge encoder on a hand-made vocabulary.
#include <gtest/gtest.h>

#include "attnspec/tokenize/score_merge.h"

namespace attnspec {
namespace {

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
