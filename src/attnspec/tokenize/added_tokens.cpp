#include "attnspec/tokenize/added_tokens.h"

#include <algorithm>

#include "attnspec/tokenize/unicode.h"

namespace attnspec {

namespace {

// Code point that ends at `end` (exclusive) in valid UTF-8.
char32_t code_point_before(std::string_view text, size_t end) {
  size_t begin = end - 1;
  while (begin > 0 && (static_cast<unsigned char>(text[begin]) & 0xC0) == 0x80) --begin;
  const char* p = text.data() + begin;
  return unicode::next_code_point(p);
}

char32_t code_point_at(std::string_view text, size_t at) {
  const char* p = text.data() + at;
  return unicode::next_code_point(p);
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens,
                                     const std::vector<std::string>& patterns)
    : tokens_(std::move(tokens)) {
  terminal_.push_back(-1);
  for (size_t i = 0; i < tokens_.size(); ++i) {
    const std::string& pattern = patterns[i];
    if (pattern.empty()) continue;
    first_byte_[static_cast<unsigned char>(pattern[0])] = true;
    int32_t node = 0;
    for (unsigned char b : pattern) {
      const uint64_t key = (uint64_t(node) << 8) | b;
      auto it = edges_.find(key);
      if (it == edges_.end()) {
        it = edges_.emplace(key, static_cast<int32_t>(terminal_.size())).first;
        terminal_.push_back(-1);
      }
      node = it->second;
    }
    terminal_[node] = static_cast<int32_t>(i);  // a repeated content keeps its last token
  }
}

int AddedTokenMatcher::longest_match(std::string_view text, size_t at, size_t& end) const {
  int found = -1;
  int32_t node = 0;
  for (size_t i = at; i < text.size(); ++i) {
    auto it = edges_.find((uint64_t(node) << 8) | static_cast<unsigned char>(text[i]));
    if (it == edges_.end()) break;
    node = it->second;
    if (terminal_[node] >= 0) {
      found = terminal_[node];
      end = i + 1;
    }
  }
  return found;
}

std::vector<AddedTokenMatcher::Segment> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<Segment> segments;
  size_t start_offset = 0;  // end of the last emitted segment
  size_t search = 0;        // where the next match may begin
  while (search < text.size() && !tokens_.empty()) {
    // Leftmost match, then the longest one starting there (aho-corasick LeftmostLongest).
    size_t begin = search, end = 0;
    int index = -1;
    for (; begin < text.size(); ++begin) {
      if (!first_byte_[static_cast<unsigned char>(text[begin])]) continue;
      index = longest_match(text, begin, end);
      if (index >= 0) break;
    }
    if (index < 0) break;
    search = end;
    const AddedToken& token = tokens_[index];
    if (token.single_word) {
      const bool space_before = begin == 0 || !unicode::is_word_char(code_point_before(text, begin));
      const bool space_after = end == text.size() || !unicode::is_word_char(code_point_at(text, end));
      if (!space_before || !space_after) continue;
    }
    if (token.lstrip) {
      size_t new_begin = begin;
      while (new_begin > 0 && unicode::is_white_space(code_point_before(text, new_begin))) {
        size_t b = new_begin - 1;
        while (b > 0 && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
        new_begin = b;
      }
      begin = std::max(new_begin, start_offset);
    }
    if (token.rstrip) {
      while (end < text.size() && unicode::is_white_space(code_point_at(text, end)))
        end += static_cast<size_t>(unicode::sequence_length(static_cast<unsigned char>(text[end])));
    }
    if (start_offset < begin) segments.push_back({start_offset, begin, -1});
    segments.push_back({begin, end, token.id});
    start_offset = end;
  }
  if (start_offset < text.size()) segments.push_back({start_offset, text.size(), -1});
  return segments;
}

}  // namespace attnspec
