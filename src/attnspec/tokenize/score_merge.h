// SentencePiece-style BPE driven by piece scores, as llama2.c's run.c encode() and llama.cpp's SPM
// tokenizer run it: each UTF-8 character becomes its piece (or its bytes' <0xXX> pieces), then
// the adjacent pair whose concatenation is the highest-scoring piece is merged, leftmost first
// on ties, until no pair forms a piece. One encoder serves llama2.c's tok*.bin (pieces hold plain
// spaces) and GGUF's "llama" tokenizer (pieces hold U+2581 for a space).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "attnspec/tokenize/bpe.h"

namespace attnspec {

class ScoreMergeEncoder {
 public:
  // `space`: what a space is written as in the pieces (" " or "\u2581"); `prefix_space`: put one
  // space before the text (SentencePiece's dummy prefix). `unk_id` stands for a byte that has no
  // <0xXX> piece.
  ScoreMergeEncoder(std::vector<std::string> pieces, std::vector<float> scores, std::string space, bool prefix_space,
                    int32_t unk_id);
  std::vector<int32_t> encode(std::string_view text) const;
  size_t size() const { return pieces_.size(); }
  const std::vector<std::string>& pieces() const { return pieces_; }

 private:
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  Vocab ids_;  // piece -> lowest id with that text
  std::string space_;
  bool prefix_space_;
  int32_t unk_id_;
  int32_t byte_ids_[256];
};

}  // namespace attnspec
