// UTF-8 and Unicode helpers for the tokenizer: code point decoding, the character classes that
// Hugging Face `tokenizers` (Rust) uses, GPT-2's byte-to-unicode map, and Unicode normalization
// that matches the tables `tokenizers` was built with.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace attnspec::unicode {

// Decodes the code point at `p` (valid UTF-8 assumed) and advances `p` past it.
inline char32_t next_code_point(const char*& p) {
  const auto b0 = static_cast<unsigned char>(*p++);
  if (b0 < 0x80) return b0;
  if (b0 < 0xE0) return ((b0 & 0x1Fu) << 6) | (static_cast<unsigned char>(*p++) & 0x3Fu);
  if (b0 < 0xF0) {
    char32_t c = (b0 & 0x0Fu) << 12;
    c |= (static_cast<unsigned char>(*p++) & 0x3Fu) << 6;
    return c | (static_cast<unsigned char>(*p++) & 0x3Fu);
  }
  char32_t c = (b0 & 0x07u) << 18;
  c |= (static_cast<unsigned char>(*p++) & 0x3Fu) << 12;
  c |= (static_cast<unsigned char>(*p++) & 0x3Fu) << 6;
  return c | (static_cast<unsigned char>(*p++) & 0x3Fu);
}

// Length in bytes of the UTF-8 sequence that starts with `lead`.
inline int sequence_length(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

// Byte offset of the first invalid UTF-8 sequence, or npos (see text.h's first_invalid_utf8).
size_t first_invalid_utf8(std::string_view s);

void append_utf8(std::string& out, char32_t c);
std::string to_utf8(char32_t c);

// Rust's char::is_whitespace: the Unicode White_Space property.
bool is_white_space(char32_t c);
// Rust `regex`'s \w: Alphabetic, marks, decimal digits, connector punctuation, joiners, on the
// Unicode tables of the `regex` crate `tokenizers` is built with (unicode_tables.inc).
bool is_word_char(char32_t c);
// Rust's char::is_numeric: general categories Nd, Nl, No, on the Unicode tables of the Rust
// that built `tokenizers` (unicode_tables.inc), not ICU's.
bool is_numeric(char32_t c);

// The classes `tokenizers`' Oniguruma matches for \p{L}, \p{N} and \w, and the \w of Rust's
// `regex` crate (its Whitespace pre-tokenizer). Their Unicode tables are newer than those of the
// system's PCRE2 and ICU; these come from unicode_tables.inc.
enum class RegexClass { Letter, Number, Word, RustWord };
bool in_regex_class(RegexClass cls, char32_t c);
// The items of a PCRE2 character class (without the brackets) matching exactly `cls`, for a
// PCRE2 whose own tables are Unicode `engine_major`.`engine_minor`.
std::string regex_class_items(RegexClass cls, int engine_major, int engine_minor);
// Rust's char::is_alphabetic (Alphabetic property).
bool is_alphabetic(char32_t c);
// `tokenizers`' is_punc: ASCII punctuation or a general category P*.
bool is_punctuation(char32_t c);
// A mark (general category M) known to Unicode 9.0: what StripAccents removes, as `tokenizers`
// (unicode-normalization's is_combining_mark) does.
bool is_combining_mark(char32_t c);
// BertNormalizer's clean_text: a control character to drop (general category Cc, Cf or Co as
// the unicode_categories crate knows them, i.e. Unicode 8.0; tab, newline and CR excepted).
bool is_bert_control(char32_t c);
// BertNormalizer's strip_accents: a nonspacing mark (Mn, Unicode 8.0 tables).
bool is_nonspacing_mark(char32_t c);
// BertNormalizer's handle_chinese_chars: the CJK ideograph blocks BERT pads with spaces.
bool is_cjk_ideograph(char32_t c);
// Rust's char::to_lowercase (full mapping, one code point at a time, no context).
void append_lowercase(std::string& out, char32_t c);

// GPT-2's reversible byte -> printable character map, each entry UTF-8 encoded.
const std::array<std::string, 256>& byte_to_unicode();

enum class NormalForm { NFC, NFD, NFKC, NFKD };

// Unicode normalization as `tokenizers` does it. Its tables are Unicode 9.0, so characters
// assigned later are treated as unassigned (no decomposition, combining class 0).
std::string normalize(std::string_view text, NormalForm form);

}  // namespace attnspec::unicode
