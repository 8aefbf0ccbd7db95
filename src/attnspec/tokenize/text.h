// Preparing a text file for tokenization: UTF-8 validation and Project Gutenberg header/footer
// stripping.
#pragma once

#include <filesystem>
#include <string>

namespace attnspec {

struct TextOptions {
  // -1: strip when the file carries Gutenberg START/END markers; 0: never; 1: always (error when
  // the markers are missing).
  int strip_gutenberg = -1;
};

// Reads `path` as UTF-8 text. Throws InputError naming the file on: unreadable file, invalid
// UTF-8 (with the byte offset) or NUL bytes. The text may be empty (it then has no tokens, as in
// Hugging Face tokenizers); a leading UTF-8 BOM is kept as the character U+FEFF and line ends stay
// as stored, so the ids equal those of HF on `path.read_bytes().decode("utf-8")`.
std::string read_text_file(const std::filesystem::path& path, const TextOptions& options = {});

// Byte offset of the first invalid UTF-8 sequence in `s`, or std::string::npos if valid.
size_t first_invalid_utf8(const std::string& s);

// The text between Gutenberg's "*** START OF ..." and "*** END OF ..." marker lines (both
// wordings, THE and THIS), or the input unchanged when no markers are present.
std::string strip_gutenberg(const std::string& text, bool* found = nullptr);

}  // namespace attnspec
