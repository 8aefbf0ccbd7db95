// PCRE2 (UTF + UCP, JIT when available) standing in for the Oniguruma regexes of `tokenizers`.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "attnspec/tokenize/unicode.h"

namespace attnspec {

class Regex {
 public:
  // Throws std::invalid_argument with PCRE2's message when the pattern does not compile.
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-overlapping matches, left to right, as byte ranges [begin, end) of `text` (valid UTF-8).
  // An empty match is reported and the search resumes one character later, as Oniguruma does.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

  // Rewrites Oniguruma's Unicode \s, \S, \w, \W into explicit PCRE2 classes (PCRE2's \s also
  // matches U+180E and its \w differs from Oniguruma's word class).
  static std::string translate(const std::string& oniguruma_pattern);

  // The items (no brackets) of a PCRE2 class matching `cls` exactly, whatever this PCRE2's
  // Unicode version (unicode::regex_class_items).
  static const std::string& class_items(unicode::RegexClass cls);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Escapes `literal` for use inside a PCRE2 pattern.
std::string regex_escape(std::string_view literal);

}  // namespace attnspec
