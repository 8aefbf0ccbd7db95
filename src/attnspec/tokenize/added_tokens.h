// Added (and special) tokens, matched in the text before the model sees it, as `tokenizers`'
// AddedVocabulary does: leftmost-longest matching with the single_word, lstrip and rstrip rules.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace attnspec {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool normalized = true;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
};

class AddedTokenMatcher {
 public:
  struct Segment {
    size_t begin, end;
    int32_t id;  // -1: plain text
  };

  AddedTokenMatcher() = default;
  // `patterns[i]` is what is searched for `tokens[i]` (its content, or its normalized content).
  AddedTokenMatcher(std::vector<AddedToken> tokens, const std::vector<std::string>& patterns);

  bool empty() const { return tokens_.empty(); }
  // Splits `text` into plain text and added tokens, covering it entirely; no empty segment.
  std::vector<Segment> split(std::string_view text) const;

 private:
  // Longest pattern starting at `at`: its index, or -1.
  int longest_match(std::string_view text, size_t at, size_t& end) const;

  std::vector<AddedToken> tokens_;
  // Byte trie: (node << 8 | byte) -> child; node 0 is the root.
  std::unordered_map<uint64_t, int32_t> edges_;
  std::vector<int32_t> terminal_;  // per node: token index or -1
  bool first_byte_[256] = {};
};

}  // namespace attnspec
