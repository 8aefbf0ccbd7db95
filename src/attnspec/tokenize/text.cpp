#include "attnspec/tokenize/text.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>

#include "attnspec/common/error.h"
#include "attnspec/tokenize/unicode.h"

namespace attnspec {

size_t first_invalid_utf8(const std::string& s) { return unicode::first_invalid_utf8(s); }

namespace {

// Offset of the first line at or after `from` that reads "*** START OF THE PROJECT GUTENBERG
// EBOOK ..." (or END, or the older "THIS PROJECT" wording), or npos.
size_t find_marker_line(const std::string& text, const std::string& kind, size_t from) {
  const std::string the = kind + " OF THE PROJECT GUTENBERG EBOOK";
  const std::string this_ = kind + " OF THIS PROJECT GUTENBERG EBOOK";
  for (size_t at = from; at < text.size();) {
    const size_t next = text.find('\n', at);
    if (text.compare(at, 3, "***") == 0) {
      size_t words = at + 3;
      while (words < text.size() && text[words] == ' ') ++words;
      if (text.compare(words, the.size(), the) == 0 || text.compare(words, this_.size(), this_) == 0)
        return at;
    }
    if (next == std::string::npos) break;
    at = next + 1;
  }
  return std::string::npos;
}

size_t line_end(const std::string& text, size_t at) {
  const size_t nl = text.find('\n', at);
  return nl == std::string::npos ? text.size() : nl + 1;
}

}  // namespace

std::string strip_gutenberg(const std::string& text, bool* found) {
  if (found) *found = false;
  const size_t start = find_marker_line(text, "START", 0);
  if (start == std::string::npos) return text;
  const size_t body = line_end(text, start);
  const size_t end = find_marker_line(text, "END", body);
  if (end == std::string::npos) return text;
  if (found) *found = true;
  return text.substr(body, end - body);
}

std::string read_text_file(const std::filesystem::path& path, const TextOptions& options) {
  const std::string name = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw input_error(name, "cannot open the text file");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw input_error(name, "cannot read the text file");
  std::string text = buffer.str();

  if (const size_t bad = first_invalid_utf8(text); bad != std::string::npos)
    throw input_error(name, "invalid UTF-8 at byte offset " + std::to_string(bad));
  if (const size_t nul = text.find('\0'); nul != std::string::npos)
    throw input_error(name, "NUL byte at byte offset " + std::to_string(nul) + " (not a text file?)");
  // A leading BOM stays: it is a character of the text (U+FEFF), which Hugging Face tokenizers
  // encode like any other, and Python's "utf-8" codec keeps when it reads the file.

  if (options.strip_gutenberg != 0) {
    bool found = false;
    std::string stripped = strip_gutenberg(text, &found);
    if (found) text.swap(stripped);
    else if (options.strip_gutenberg == 1)
      throw input_error(name, "no Project Gutenberg START/END marker lines to strip");
  }
  return text;
}

}  // namespace attnspec
